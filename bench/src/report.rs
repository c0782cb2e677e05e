//! The table and the JSON.

use serde::Serialize;
use serde_json::{Map, Value};

/// A goal the project set itself: reported, never asserted.
#[derive(Debug, Clone, Serialize)]
pub struct Goal {
    pub text: String,
    pub met: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub section: String,
    pub figure: String,
    /// The figure's main number, in `unit`.
    pub value: f64,
    pub unit: String,
    /// How the value is shown (may carry more than one number, e.g. p50 and p99).
    pub shown: String,
    pub limit_label: Option<String>,
    pub limit: Option<f64>,
    pub ratio: Option<f64>,
    pub goal: Option<Goal>,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub rows: Vec<Row>,
    pub details: Map<String, Value>,
}

/// Which way a ratio is good.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    AtLeast(f64),
    AtMost(f64),
}

impl Report {
    pub fn info(&mut self, section: &str, figure: &str, value: f64, unit: &str, shown: String) {
        self.rows.push(Row {
            section: section.to_owned(),
            figure: figure.to_owned(),
            value,
            unit: unit.to_owned(),
            shown,
            limit_label: None,
            limit: None,
            ratio: None,
            goal: None,
        });
    }

    /// A figure next to a limit or peer; `ratio = value / limit`.
    #[allow(clippy::too_many_arguments)]
    pub fn compare(
        &mut self,
        section: &str,
        figure: &str,
        value: f64,
        unit: &str,
        shown: String,
        limit: f64,
        limit_label: String,
        target: Option<Target>,
    ) {
        let ratio = value / limit;
        let goal = target.map(|target| match target {
            Target::AtLeast(min) => Goal {
                text: format!(">= {min:.2}"),
                met: ratio >= min,
            },
            Target::AtMost(max) => Goal {
                text: format!("<= {max:.2}"),
                met: ratio <= max,
            },
        });
        self.rows.push(Row {
            section: section.to_owned(),
            figure: figure.to_owned(),
            value,
            unit: unit.to_owned(),
            shown,
            limit_label: Some(limit_label),
            limit: Some(limit),
            ratio: ratio.is_finite().then_some(ratio),
            goal,
        });
    }

    pub fn detail(&mut self, key: &str, value: impl Serialize) {
        self.details
            .insert(key.to_owned(), serde_json::to_value(value).unwrap_or(Value::Null));
    }

    pub fn print_table(&self) {
        let header = ["figure", "value", "limit / peer", "ratio", "goal"];
        let mut lines: Vec<[String; 5]> = Vec::new();
        let mut section = "";
        let mut section_starts = Vec::new();
        for row in &self.rows {
            if row.section != section {
                section = &row.section;
                section_starts.push((lines.len(), row.section.clone()));
            }
            lines.push([
                row.figure.clone(),
                row.shown.clone(),
                row.limit_label.clone().unwrap_or_default(),
                row.ratio.map(|r| format!("{r:.2}")).unwrap_or_default(),
                row.goal
                    .as_ref()
                    .map(|g| format!("{} {}", g.text, if g.met { "met" } else { "MISSED" }))
                    .unwrap_or_default(),
            ]);
        }
        let mut widths = header.map(str::len);
        for line in &lines {
            for (width, cell) in widths.iter_mut().zip(line) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let render = |cells: [&str; 5]| {
            let mut out = String::new();
            for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
                let pad = width - cell.chars().count();
                // Numbers right-aligned, text left-aligned.
                if i == 1 || i == 3 {
                    out.push_str(&" ".repeat(pad));
                    out.push_str(cell);
                } else {
                    out.push_str(cell);
                    out.push_str(&" ".repeat(pad));
                }
                out.push_str(" | ");
            }
            out.trim_end_matches(" | ").trim_end().to_owned()
        };
        let total: usize = widths.iter().sum::<usize>() + 3 * (widths.len() - 1);
        println!("{}", render(header));
        println!("{}", "-".repeat(total));
        let mut starts = section_starts.into_iter().peekable();
        for (i, line) in lines.iter().enumerate() {
            if let Some((_, name)) = starts.next_if(|(start, _)| *start == i) {
                println!("[{name}]");
            }
            println!("{}", render([&line[0], &line[1], &line[2], &line[3], &line[4]]));
        }
    }
}

/// A number with sensible precision.
pub fn num(value: f64) -> String {
    if !value.is_finite() {
        return "n/a".to_owned();
    }
    let abs = value.abs();
    if abs >= 100.0 {
        format!("{value:.0}")
    } else if abs >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}
