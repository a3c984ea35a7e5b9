//! The IP layer: fragment reassembly, and fragmentation for crafting test traffic.

mod datagram;
pub mod defrag;
pub mod fragment;
