//! Alerts as JSON lines. (Being written.)
