//! Lua rules: the Haka-compatible API. (Being written.)
