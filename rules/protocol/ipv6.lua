-- protocol/ipv6: the ipv6 dissector as sluice provides it.
-- IPv6: events.receive_packet(pkt); addr(...), network(...).
-- The dissector itself runs in Rust; this module returns its Lua face,
-- which is also reachable as haka.dissectors.ipv6.
return haka.dissectors.ipv6
