//! `[templates]`: the operator's template overrides.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    dir: PathBuf,
}

/// Operator templates: `dir` holds files named like the embedded ones
/// (`pages/layout.hbs`, `email/digest.subject.hbs`, …) that replace them.
/// Checked when the renderer is built at start-up.
#[derive(Debug, Clone)]
pub struct TemplatesConfig {
    pub dir: Option<PathBuf>,
}

impl TemplatesConfig {
    /// The override directory, if one is configured.
    pub fn override_dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }
}

impl From<&Raw> for TemplatesConfig {
    fn from(r: &Raw) -> TemplatesConfig {
        TemplatesConfig {
            dir: (!r.dir.as_os_str().is_empty()).then(|| r.dir.clone()),
        }
    }
}
