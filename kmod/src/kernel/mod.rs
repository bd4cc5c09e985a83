//! Kernel glue (written next).
