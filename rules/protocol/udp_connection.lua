-- protocol/udp_connection: the udp_connection dissector as sluice provides it.
-- UDP flows: events new_connection(flow, pkt), receive_packet(flow, pkt, dir),
-- receive_data(flow, pkt, dir), end_connection(flow); policies.new_connection.
-- The dissector itself runs in Rust; this module returns its Lua face,
-- which is also reachable as haka.dissectors.udp_connection.
return haka.dissectors.udp_connection
