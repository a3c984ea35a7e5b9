require("protocol/tcp_connection")
haka.rule {
  on = haka.dissectors.tcp_connection.events.depth_reached,
  eval = function (flow, dir) haka.alert{ description = "depth " .. dir .. " " .. flow.dstport } end
}
