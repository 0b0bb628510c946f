//! What the user sees while waiting: the case key and link, then a spinner with the elapsed time.

use super::api::CaseInfo;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::time::Duration;

/// Receives the flow's progress; the terminal implementation draws a spinner, tests record the calls.
pub trait Progress {
    /// The case exists: tell the user where it is.
    fn created(&mut self, case: &CaseInfo);
    /// Still waiting (called after every poll).
    fn waiting(&mut self, case: &CaseInfo, elapsed: Duration);
    /// Something the user should read (self-approval ignored, Datadog slow...).
    fn note(&mut self, msg: &str);
    /// The wait is over (any outcome): clear the spinner.
    fn finish(&mut self);
}

/// Draws on stderr; indicatif hides the spinner by itself when stderr is not a terminal, the lines stay.
pub struct Spinner {
    bar: Option<ProgressBar>,
}

impl Spinner {
    pub fn new() -> Spinner {
        Spinner { bar: None }
    }
}

impl Default for Spinner {
    fn default() -> Self {
        Spinner::new()
    }
}

impl Progress for Spinner {
    fn created(&mut self, case: &CaseInfo) {
        eprintln!("ddcoterm: approval requested: case {} — {}", case.key, case.link);
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} waiting for approval of {msg} ({elapsed}, Ctrl-C cancels)",
            )
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(case.key.clone());
        bar.enable_steady_tick(Duration::from_millis(120));
        self.bar = Some(bar);
    }
    fn waiting(&mut self, case: &CaseInfo, _elapsed: Duration) {
        if let Some(b) = &self.bar {
            b.set_message(format!("{} [{}]", case.key, case.status));
        }
    }
    fn note(&mut self, msg: &str) {
        match &self.bar {
            Some(b) => b.suspend(|| eprintln!("ddcoterm: {msg}")),
            None => eprintln!("ddcoterm: {msg}"),
        }
    }
    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

/// Records progress calls (tests) — kept here so that every test uses the same one.
#[derive(Debug, Default)]
pub struct Recorded {
    pub created: Vec<String>,
    pub polls: usize,
    pub notes: Vec<String>,
    pub finished: bool,
}

impl Progress for Recorded {
    fn created(&mut self, case: &CaseInfo) {
        self.created.push(case.key.clone());
    }
    fn waiting(&mut self, _case: &CaseInfo, _elapsed: Duration) {
        self.polls += 1;
    }
    fn note(&mut self, msg: &str) {
        self.notes.push(msg.to_string());
    }
    fn finish(&mut self) {
        self.finished = true;
    }
}
