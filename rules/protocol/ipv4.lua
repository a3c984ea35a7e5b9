-- protocol/ipv4: the ipv4 dissector as sluice provides it.
-- IPv4: events.receive_packet(pkt); addr(...), network(...).
-- The dissector itself runs in Rust; this module returns its Lua face,
-- which is also reachable as haka.dissectors.ipv4.
return haka.dissectors.ipv4
