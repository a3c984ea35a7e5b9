-- flow:halfreset() on a TCP connection whose client->server stream contains
-- "attack", also when the word is split across packets (see on_word.lua).
require("on_word")("attack", "halfreset")
