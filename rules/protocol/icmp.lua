-- protocol/icmp: the icmp dissector as sluice provides it.
-- ICMP and ICMPv6: events.receive_packet(pkt).
-- The dissector itself runs in Rust; this module returns its Lua face,
-- which is also reachable as haka.dissectors.icmp.
return haka.dissectors.icmp
