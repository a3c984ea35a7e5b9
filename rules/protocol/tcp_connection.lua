-- protocol/tcp_connection: the tcp_connection dissector as sluice provides it.
-- TCP connections: events new_connection(flow, pkt), receive_packet(flow, pkt, dir),
-- receive_data(flow, data, dir), end_connection(flow); policies.new_connection.
-- The dissector itself runs in Rust; this module returns its Lua face,
-- which is also reachable as haka.dissectors.tcp_connection.
return haka.dissectors.tcp_connection
