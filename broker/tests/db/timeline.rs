use baton::{db, domain::TimelineKind};
use sqlx::PgPool;

use crate::helpers::job;

#[sqlx::test(migrations = "../sql")]
async fn heartbeats_fold_into_one_entry_per_attempt(db: PgPool) {
    let job = job(&db, "m", None).await;
    let mut conn = db.acquire().await.unwrap();
    db::timeline::record(&mut conn, job.id, TimelineKind::Started, Some(1), Some("w1"), None)
        .await
        .unwrap();
    for _ in 0..3 {
        db::timeline::heartbeat(&mut conn, job.id, 1, "w1").await.unwrap();
    }
    db::timeline::heartbeat(&mut conn, job.id, 2, "w1").await.unwrap();

    let events = db::timeline::list(&db, job.id).await.unwrap();
    let kinds: Vec<_> = events.iter().map(|e| (e.kind, e.attempt)).collect();
    assert_eq!(
        kinds,
        [
            (TimelineKind::Started, Some(1)),
            (TimelineKind::Heartbeat, Some(1)),
            (TimelineKind::Heartbeat, Some(2))
        ]
    );
    assert_eq!(events[1].detail.as_ref().unwrap()["count"], 3);
}

#[sqlx::test(migrations = "../sql")]
async fn many_jobs_get_the_same_entry_at_once(db: PgPool) {
    let (a, b) = (job(&db, "m", None).await, job(&db, "m", None).await);
    let at = time::OffsetDateTime::now_utc();
    db::timeline::record_many(&db, &[a.id, b.id], &[1, 1], TimelineKind::Redispatched, at)
        .await
        .unwrap();
    for id in [a.id, b.id] {
        let events = db::timeline::list(&db, id).await.unwrap();
        assert_eq!(
            events.iter().map(|e| e.kind).collect::<Vec<_>>(),
            [TimelineKind::Redispatched]
        );
    }
}
