//! Opens a capture file for `explain` and hands its bytes to the pure reader
//! (`model::capture`). The open never blocks and follows only regular files: a
//! FIFO, device or directory named as the capture is refused with what it is.

use std::fs::File;
use std::io::BufReader;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::model::capture::{self, Capture, FileError, sniff};

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("cannot open capture {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("capture {path} is {what}, not a regular file")]
    NotRegular { path: PathBuf, what: &'static str },
    #[error("{path} is not a pcap or pcapng capture: it looks like {looks}")]
    NotACapture { path: PathBuf, looks: String },
    #[error("cannot read capture {path}: {why}")]
    Read { path: PathBuf, why: String },
}

/// Reads and explains the capture at `path`.
pub fn read(path: &Path) -> Result<Capture, CaptureError> {
    // O_NONBLOCK: opening a FIFO would otherwise wait for a writer.
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|source| CaptureError::Open {
            path: path.to_path_buf(),
            source,
        })?;
    let kind = file
        .metadata()
        .map_err(|source| CaptureError::Open {
            path: path.to_path_buf(),
            source,
        })?
        .file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_socket() {
            "a socket"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else {
            "not a file"
        };
        return Err(CaptureError::NotRegular {
            path: path.to_path_buf(),
            what,
        });
    }
    capture::explain(BufReader::with_capacity(1 << 16, file)).map_err(|e| match e {
        FileError::NotACapture(head) => CaptureError::NotACapture {
            path: path.to_path_buf(),
            looks: sniff::describe(&head),
        },
        FileError::Read(why) => CaptureError::Read {
            path: path.to_path_buf(),
            why,
        },
    })
}
