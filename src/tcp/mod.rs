//! TCP: the connection tracker and per-direction stream reassembly.
