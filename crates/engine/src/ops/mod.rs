//! The operations, one module each; the CLI calls these and prints.

pub mod backup;
pub mod cluster;
pub mod converge;
pub mod preview;
pub mod status;
pub mod test;
pub mod upgrade;
