//! The IP layer: fragment reassembly.

pub mod defrag;
