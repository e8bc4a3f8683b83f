//! Errors that stop a command before or outside diagnostics: the filesystem,
//! usage. Bad estate input is never an `Error`; it is a diagnostic.

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub enum Error {
    /// An I/O failure: what we were doing, on which path, and why.
    Io {
        doing: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    NoEstateFiles(PathBuf),
    NotUtf8(PathBuf),
    /// The estate has errors; they have been reported as diagnostics.
    InvalidEstate {
        errors: usize,
    },
    /// Anything else a command refuses to do, with what to do instead.
    Refused {
        message: String,
        help: Option<String>,
    },
}

impl Error {
    pub fn io(doing: &'static str, path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            doing,
            path: path.to_path_buf(),
            source,
        }
    }

    pub fn refused(message: impl Into<String>, help: impl Into<String>) -> Self {
        Error::Refused {
            message: message.into(),
            help: Some(help.into()),
        }
    }

    /// A hint printed under the error.
    pub fn help(&self) -> Option<String> {
        match self {
            Error::NoEstateFiles(dir) => {
                Some(format!("create one with `keelson init {}`", dir.display()))
            }
            Error::NotUtf8(_) => Some("save the file as UTF-8".into()),
            Error::Refused { help, .. } => help.clone(),
            Error::Io { .. } | Error::InvalidEstate { .. } => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io {
                doing,
                path,
                source,
            } => write!(f, "{doing} `{}`: {source}", path.display()),
            Error::NoEstateFiles(dir) => write!(f, "no `.kdl` files in `{}`", dir.display()),
            Error::NotUtf8(path) => write!(f, "`{}` is not UTF-8 text", path.display()),
            Error::InvalidEstate { errors } => {
                write!(
                    f,
                    "the estate has {errors} error{}",
                    if *errors == 1 { "" } else { "s" }
                )
            }
            Error::Refused { message, .. } => f.write_str(message),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
