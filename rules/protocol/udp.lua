-- protocol/udp: the udp dissector as sluice provides it.
-- UDP: events.receive_packet(pkt).
-- The dissector itself runs in Rust; this module returns its Lua face,
-- which is also reachable as haka.dissectors.udp.
return haka.dissectors.udp
