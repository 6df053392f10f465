//! One progress line on standard error, for a person at a terminal; nothing
//! at all when standard error is not a terminal (scripts and logs stay
//! clean, and standard output is never touched).

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

/// A progress bar redrawn in place: `[#####     ] TEXT`.
#[derive(Debug)]
pub struct ProgressLine {
    tty: bool,
    /// The last line drawn, not yet ended.
    drawn: Mutex<Option<String>>,
}

const WIDTH: usize = 30;

impl ProgressLine {
    /// A line on standard error if it is a terminal and not `quiet`.
    pub fn new(quiet: bool) -> ProgressLine {
        ProgressLine {
            tty: !quiet && std::io::stderr().is_terminal(),
            drawn: Mutex::new(None),
        }
    }

    /// Whether anything is drawn (standard error is a terminal).
    pub fn shown(&self) -> bool {
        self.tty
    }

    /// Draws `fraction` (0 to 1) done and `text`, unless that is what the
    /// line already shows.
    pub fn draw(&self, fraction: f64, text: &str) {
        if !self.tty {
            return;
        }
        let filled = (fraction.clamp(0.0, 1.0) * WIDTH as f64) as usize;
        let line = format!(
            "[{}{}] {text}",
            "#".repeat(filled),
            " ".repeat(WIDTH - filled)
        );
        let mut drawn = self.drawn.lock().unwrap_or_else(|e| e.into_inner());
        if drawn.as_deref() == Some(line.as_str()) {
            return;
        }
        // Blank out what a longer previous line left behind.
        let pad = drawn.as_ref().map_or(0, |d| {
            d.chars().count().saturating_sub(line.chars().count())
        });
        let _ = write!(std::io::stderr().lock(), "\r{line}{}", " ".repeat(pad));
        *drawn = Some(line);
    }

    /// Ends the line drawn, if any, so that what follows starts on its own.
    pub fn finish(&self) {
        let mut drawn = self.drawn.lock().unwrap_or_else(|e| e.into_inner());
        if drawn.take().is_some() {
            let _ = writeln!(std::io::stderr().lock());
        }
    }
}
