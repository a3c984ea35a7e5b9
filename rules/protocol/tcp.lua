-- protocol/tcp: the tcp dissector as sluice provides it.
-- TCP: events.receive_packet(pkt).
-- The dissector itself runs in Rust; this module returns its Lua face,
-- which is also reachable as haka.dissectors.tcp.
return haka.dissectors.tcp
