//! What a job's timeline records (`job_events.kind`).

use serde::{Deserialize, Serialize};

/// One kind of timeline entry. `http::openapi::timeline` describes each, with its `detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimelineKind {
    /// Baton began reading the submission.
    Received,
    /// The files were stored and the job committed.
    Stored,
    /// RabbitMQ confirmed the attempt's message.
    Dispatched,
    /// A dispatched attempt that never started is published again.
    Redispatched,
    /// A worker started the attempt.
    Started,
    /// A worker renewed the lease; one entry per attempt, updated in place.
    Heartbeat,
    /// A worker reported success.
    Succeeded,
    /// The job failed.
    Failed,
    /// The attempt ended and another is queued.
    Retried,
    /// RabbitMQ gave the unstarted attempt back.
    Returned,
    /// The job failed by a timeout.
    TimedOut,
    /// A client cancelled the job.
    Cancelled,
    /// A worker event that changed nothing.
    Ignored,
    /// A cleanup pass found an input's bytes missing from the volume.
    FileMissing,
}

impl TimelineKind {
    /// Every kind, in the order a job usually meets them.
    pub const ALL: [Self; 14] = [
        Self::Received,
        Self::Stored,
        Self::Dispatched,
        Self::Redispatched,
        Self::Started,
        Self::Heartbeat,
        Self::Succeeded,
        Self::Failed,
        Self::Retried,
        Self::Returned,
        Self::TimedOut,
        Self::Cancelled,
        Self::Ignored,
        Self::FileMissing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Stored => "stored",
            Self::Dispatched => "dispatched",
            Self::Redispatched => "redispatched",
            Self::Started => "started",
            Self::Heartbeat => "heartbeat",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Retried => "retried",
            Self::Returned => "returned",
            Self::TimedOut => "timed_out",
            Self::Cancelled => "cancelled",
            Self::Ignored => "ignored",
            Self::FileMissing => "file_missing",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == raw)
    }
}

super::stored_as_text!(TimelineKind, "a timeline kind");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_serialise_as_their_word() {
        for kind in TimelineKind::ALL {
            assert_eq!(TimelineKind::parse(kind.as_str()), Some(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        assert_eq!(TimelineKind::parse("finished"), None);
    }
}
