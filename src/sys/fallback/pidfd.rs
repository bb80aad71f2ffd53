//! pidfd_getfd(2) is Linux's: elsewhere another process's socket cannot be opened.

use std::os::fd::OwnedFd;

use thiserror::Error;

use crate::model::predict::Effective;

#[derive(Debug, Error)]
pub enum PidfdError {
    #[error("opening another process's socket needs Linux's pidfd_getfd (not on this platform)")]
    Unsupported,
}

impl PidfdError {
    pub fn is_permanent(&self) -> bool {
        true
    }
}

pub fn open_socket(_pid: u32, _inode: u32) -> Result<OwnedFd, PidfdError> {
    Err(PidfdError::Unsupported)
}

pub fn open_socket_fd(_pid: u32, _fd: i32, _inode: u32) -> Result<OwnedFd, PidfdError> {
    Err(PidfdError::Unsupported)
}

pub fn read_settings_fd(_pid: u32, _fd: i32, _inode: u32) -> Result<Effective, PidfdError> {
    Err(PidfdError::Unsupported)
}
