//! The probe's findings: one timed line per stage, ✓ or ✗.

use std::time::{Duration, Instant};

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Stage {
    pub ok: bool,
    pub at: Duration,
    pub text: String,
}

pub struct Probe {
    pub stages: Vec<Stage>,
    pub(super) start: Instant,
}

impl Probe {
    pub(super) fn note(&mut self, ok: bool, text: impl Into<String>) {
        self.stages.push(Stage {
            ok,
            at: self.start.elapsed(),
            text: text.into(),
        });
    }

    pub fn failed(&self) -> bool {
        self.stages.iter().any(|s| !s.ok)
    }

    pub fn report(&self) -> String {
        self.stages
            .iter()
            .map(|s| {
                format!(
                    "{:>7.3}s {} {}\n",
                    s.at.as_secs_f64(),
                    if s.ok { "✓" } else { "✗" },
                    s.text
                )
            })
            .collect()
    }
}
