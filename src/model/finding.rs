//! A problem found by a pure check, named by file and YAML path; the loader turns it into a
//! [`Diagnostic`](super::Diagnostic) with a line and column once it knows the file's positions.

use super::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Repository path of the file the problem is in.
    pub file: String,
    pub path: Path,
    /// Point at the key of the entry rather than its value (unknown or unsupported keys).
    pub on_key: bool,
    pub code: &'static str,
    pub message: String,
    pub hint: Option<String>,
}

impl Finding {
    pub fn new(file: &str, path: Path, code: &'static str, message: impl Into<String>) -> Self {
        Finding {
            file: file.to_string(),
            path,
            on_key: false,
            code,
            message: message.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn on_key(mut self) -> Self {
        self.on_key = true;
        self
    }
}

/// Collects findings for one file while a check walks it.
#[derive(Debug)]
pub struct Findings<'a> {
    pub file: &'a str,
    pub list: Vec<Finding>,
}

impl<'a> Findings<'a> {
    pub fn new(file: &'a str) -> Self {
        Findings { file, list: Vec::new() }
    }

    /// Records a finding and returns it for a hint to be added.
    pub fn add(
        &mut self,
        path: Path,
        code: &'static str,
        message: impl Into<String>,
    ) -> &mut Finding {
        self.list.push(Finding::new(self.file, path, code, message));
        self.list.last_mut().expect("just pushed")
    }
}

impl Finding {
    /// Adds a hint in place (for use through [`Findings::add`]).
    pub fn with_hint(&mut self, hint: impl Into<String>) -> &mut Self {
        self.hint = Some(hint.into());
        self
    }
}
