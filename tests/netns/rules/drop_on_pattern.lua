-- flow:drop() on a TCP connection whose client->server stream contains
-- "dropme", also when the word is split across packets (see on_word.lua).
require("on_word")("dropme", "drop")
