-- No rules: everything passes (the baseline of the netns tests).
require("protocol/ipv4")
require("protocol/tcp_connection")
