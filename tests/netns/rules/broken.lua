-- A syntax error on line 3: loading this must fail and keep the old rules.
require("protocol/ipv4")
haka.rule { on = , eval = function () end }
