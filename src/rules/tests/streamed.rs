//! Streamed `receive_data` rules (Haka's `options = { streamed = true }`),
//! partial consumption, and monologues.

use super::*;

/// A streamed rule that resets when "attack" shows up anywhere in the
/// client's stream, however it is cut.
const FIND_ATTACK: &str = r#"
    local tcp_connection = require("protocol/tcp_connection")
    haka.rule {
      on = tcp_connection.events.receive_data,
      options = { streamed = true },
      eval = function (flow, iter, dir)
        if dir ~= "up" then return end
        local window = ""
        for sub in iter:foreach_available() do
          window = window .. sub:asstring()
          local hit = window:find("attack", 1, true)
          window = window:sub(-5)
          if hit then
            found_at = iter.meter
            flow:reset()
            return
          end
        end
      end
    }
"#;

fn end_of(h: &mut Harness, f: &FlowInfo) {
    h.rules.end(Event::TcpEndConnection, &cx(), f);
}

#[test]
fn a_pattern_split_over_one_to_ten_chunks_is_found_on_the_chunk_that_completes_it() {
    let stream = b"GET /index.html?q=attack HTTP/1.1\r\n";
    let at = stream.windows(6).position(|w| w == b"attack").unwrap() + 6;
    for pieces in 1..=10usize {
        let mut h = Harness::new(FIND_ATTACK);
        let f = tcp_flow(pieces as u64);
        // Cut the stream into `pieces` chunks, the cuts spread over the pattern.
        let mut cuts: Vec<usize> = (1..pieces).map(|k| at - 6 + (k * 6) / pieces).collect();
        cuts.dedup();
        let mut start = 0;
        let mut reset_on = None;
        for (i, end) in cuts.iter().copied().chain([stream.len()]).enumerate() {
            let a = h.data(&f, Direction::Up, &stream[start..end]);
            if a == Action::Reset {
                reset_on.get_or_insert((i, end));
            } else {
                assert_eq!(a, Action::Accept, "{pieces} pieces, chunk {i}");
            }
            start = end;
        }
        let (_, end) = reset_on.unwrap_or_else(|| panic!("{pieces} pieces: not found"));
        assert!(end >= at, "{pieces} pieces: reset before the pattern was complete");
        assert!(end - at < stream.len(), "{pieces} pieces");
        assert_eq!(h.global::<i64>("found_at") as usize, end);
        assert_eq!(h.errors(), 0);
    }
}

#[test]
fn the_same_stream_without_the_pattern_passes_and_the_other_direction_is_separate() {
    let mut h = Harness::new(FIND_ATTACK);
    let f = tcp_flow(40);
    assert_eq!(h.data(&f, Direction::Up, b"GET /att"), Action::Accept);
    // "ack" comes from the server: another stream, no match across them.
    assert_eq!(h.data(&f, Direction::Down, b"ack"), Action::Accept);
    assert_eq!(h.data(&f, Direction::Up, b"empt"), Action::Accept);
    end_of(&mut h, &f);
    assert_eq!(h.errors(), 0);
}

#[test]
fn blocking_calls_wait_for_bytes_and_return_haka_eof_results() {
    let mut h = Harness::new(
        r#"haka.rule { on = haka.dissectors.tcp_connection.events.receive_data, options = { streamed = true },
          eval = function (flow, iter, dir)
            if dir ~= "up" then return end
            log = log or {}
            local function add(s) log[#log + 1] = s end
            local ok, n = iter:check_available(5)
            add("check " .. tostring(ok) .. " " .. n)
            add("sub " .. iter:sub(3):asstring() .. " meter " .. iter.meter)
            add("advance " .. iter:advance(4))
            add("wait " .. tostring(iter:wait()))
            local s = iter:sub(100)            -- the stream ends in the middle
            add("tail " .. s:asstring() .. " eof " .. tostring(iter.iseof))
            add("after " .. tostring(iter:sub("available")) .. " " .. tostring(iter:wait()))
          end }"#,
    );
    let f = tcp_flow(41);
    h.data(&f, Direction::Up, b"ab");
    h.data(&f, Direction::Up, b"cdefgh");
    h.data(&f, Direction::Up, b"ijk");
    end_of(&mut h, &f);
    let log: Vec<String> = h.global("log");
    assert_eq!(
        log,
        [
            "check true 5",
            "sub abc meter 3",
            "advance 4",
            "wait true",
            "tail hijk eof true",
            "after nil false"
        ]
    );
    assert_eq!(h.errors(), 0);
}

#[test]
fn eval_returning_ends_the_rule_for_that_direction() {
    let mut h = Harness::new(
        r#"calls = 0
        haka.rule { on = haka.dissectors.tcp_connection.events.receive_data, options = { streamed = true },
          eval = function (flow, iter, dir)
            calls = calls + 1
            first = iter:sub("available"):asstring()
          end }"#,
    );
    let f = tcp_flow(42);
    for chunk in [&b"one"[..], b"two", b"three"] {
        h.data(&f, Direction::Up, chunk);
    }
    h.data(&f, Direction::Down, b"reply");
    end_of(&mut h, &f);
    assert_eq!(h.global::<i64>("calls"), 2, "once per direction");
    assert_eq!(h.global::<String>("first"), "reply");
}

#[test]
fn an_error_inside_the_coroutine_is_reported_once_and_the_error_policy_applies() {
    let mut h = Harness::new(
        r#"haka.rule { on = haka.dissectors.tcp_connection.events.receive_data, options = { streamed = true },
          eval = function (flow, iter, dir)
            if dir ~= "up" then return end
            iter:sub(4)
            error("boom")
          end }"#,
    );
    let f = tcp_flow(43);
    assert_eq!(h.data(&f, Direction::Up, b"ab"), Action::Accept);
    assert_eq!(h.data(&f, Direction::Up, b"cd"), Action::DropPacket, "the packet that made it fail");
    assert_eq!(h.data(&f, Direction::Up, b"ef"), Action::Accept, "not resumed again");
    end_of(&mut h, &f);
    assert_eq!(h.errors(), 1);
}

#[test]
fn the_instruction_limit_covers_each_resume() {
    let cfg = RulesConfig { instruction_limit: 20_000, ..RulesConfig::default() };
    let mut h = Harness::with_config(
        r#"haka.rule { on = haka.dissectors.tcp_connection.events.receive_data, options = { streamed = true },
          eval = function (flow, iter, dir)
            for sub in iter:foreach_available() do
              if sub:asstring() == "spin" then while true do end end
            end
          end }"#,
        &cfg,
    );
    let f = tcp_flow(44);
    assert_eq!(h.data(&f, Direction::Up, b"fine"), Action::Accept);
    assert_eq!(h.data(&f, Direction::Up, b"spin"), Action::DropPacket);
    assert_eq!(h.errors(), 1);
    // Other connections still run.
    assert_eq!(h.data(&tcp_flow(45), Direction::Up, b"fine"), Action::Accept);
    assert_eq!(h.errors(), 1);
}

#[test]
fn a_rule_that_never_advances_is_stopped_at_the_stream_buffer_limit() {
    let cfg = RulesConfig { max_held_bytes: 64, ..RulesConfig::default() };
    let mut h = Harness::with_config(
        r#"haka.rule { on = haka.dissectors.tcp_connection.events.receive_data, options = { streamed = true },
          eval = function (flow, iter, dir) local all = iter:sub("all") end }"#,
        &cfg,
    );
    let f = tcp_flow(46);
    assert_eq!(h.data(&f, Direction::Up, &[b'x'; 40]), Action::Accept);
    assert_eq!(h.data(&f, Direction::Up, &[b'x'; 40]), Action::DropPacket);
    assert_eq!(h.errors(), 1);
}

#[test]
fn a_streamed_rule_starts_at_the_end_of_a_stream_that_had_no_bytes() {
    let mut h = Harness::new(
        r#"haka.rule { on = haka.dissectors.tcp_connection.events.receive_data, options = { streamed = true },
          eval = function (flow, iter, dir) ran = (ran or "") .. dir .. ":" .. tostring(iter:sub("all")) .. " " end }"#,
    );
    let f = tcp_flow(47);
    h.data(&f, Direction::Up, b"q");
    end_of(&mut h, &f);
    let ran: String = h.global("ran");
    assert!(ran.starts_with("up:q ") && ran.ends_with("down:nil "), "{ran}");
}

#[test]
fn read_only_marks_only() {
    let mut h = Harness::new(
        r#"haka.rule { on = haka.dissectors.tcp_connection.events.receive_data, options = { streamed = true },
          eval = function (flow, iter, dir)
            iter:mark(true)
            iter:unmark()
            ok, msg = pcall(iter.mark, iter)
            msg = tostring(msg)
          end }"#,
    );
    h.data(&tcp_flow(48), Direction::Up, b"x");
    assert!(!h.global::<bool>("ok"));
    assert!(h.global::<String>("msg").contains("read-write marks"));
}

#[test]
fn sub_buffers_use_haka_offsets_and_outlive_their_event() {
    let mut h = Harness::new(
        r#"haka.rule { on = haka.dissectors.tcp_connection.events.receive_data, options = { streamed = true },
          eval = function (flow, iter, dir)
            kept = iter:sub(6)
            r = { #kept, kept:sub(2, 3):asstring(), kept:sub(4):asstring(), kept[1], kept:size() }
          end }"#,
    );
    h.data(&tcp_flow(49), Direction::Up, b"abc");
    h.data(&tcp_flow(49), Direction::Up, b"defgh");
    let r: (i64, String, String, i64, i64) = h.eval("return table.unpack(r)").unwrap();
    assert_eq!(r, (6, "cde".to_owned(), "ef".to_owned(), i64::from(b'a'), 6));
    assert_eq!(h.eval::<String>("return kept:asstring()").unwrap(), "abcdef");
}

#[test]
fn streamed_is_only_for_receive_data() {
    let (alerts, _) = crate::alert::AlertSink::memory();
    let sinks = RuleSinks { alerts, stats: Arc::new(Stats::new()) };
    let err = LuaRules::from_source(
        "t.lua",
        "haka.rule{ on = haka.dissectors.tcp.events.receive_packet, options = { streamed = true }, eval = print }",
        &RulesConfig::default(),
        sinks,
    )
    .unwrap_err();
    assert!(err.message().contains("t.lua:1:") && err.message().contains("receive_data only"), "{err}");
}

/// A plain rule that consumes only whole lines and hands the rest back.
const LINES: &str = r#"
    lines = {}
    haka.rule { on = haka.dissectors.tcp_connection.events.receive_data,
      eval = function (flow, data, dir)
        local s = data:asstring()
        local used = 0
        for line in s:gmatch("([^\n]*)\n") do
          lines[#lines + 1] = line
          used = used + #line + 1
        end
        if used < #s then tail_seen = s:sub(used + 1) end
        return used
      end }
"#;

#[test]
fn partial_consumption_hands_the_rest_back_first() {
    let mut h = Harness::new(LINES);
    let f = tcp_flow(50);
    h.data(&f, Direction::Up, b"one\ntw");
    h.data(&f, Direction::Up, b"o\nthr");
    h.data(&f, Direction::Up, b"ee\nfour");
    let lines: Vec<String> = h.global("lines");
    assert_eq!(lines, ["one", "two", "three"]);
    // At the end of the stream the rule gets what it left once more.
    end_of(&mut h, &f);
    assert_eq!(h.global::<String>("tail_seen"), "four");
    assert_eq!(h.errors(), 0);
}

#[test]
fn partial_consumption_counts_out_of_range_are_errors() {
    let mut h = Harness::new(
        r#"haka.rule { on = haka.dissectors.tcp_connection.events.receive_data,
          eval = function (flow, data, dir) return #data + 1 end }"#,
    );
    assert_eq!(h.data(&tcp_flow(51), Direction::Up, b"abc"), Action::DropPacket);
    assert_eq!(h.errors(), 1);
}

/// Records every monologue as `dir:index:last:offset:bytes`.
const MONOLOGUES: &str = r#"
    turns = {}
    haka.rule { on = haka.dissectors.tcp_connection.events.monologue,
      eval = function (flow, data, dir, part)
        turns[#turns + 1] = string.format("%s:%d:%s:%d:%s", dir, part.index, tostring(part.last),
          part.offset, data:asstring())
        if part.last and part.index > 3 then flow:reset() end
      end }
"#;

#[test]
fn monologues_are_each_sides_turns_with_pipelined_requests_together() {
    let mut h = Harness::new(MONOLOGUES);
    assert!(h.rules.subscribed(Event::TcpData), "built from receive_data");
    let f = tcp_flow(52);
    h.data(&f, Direction::Up, b"GET /a\r\n");
    h.data(&f, Direction::Up, b"GET /b\r\n");
    h.data(&f, Direction::Down, b"200 a");
    h.data(&f, Direction::Down, b"200 b");
    h.data(&f, Direction::Up, b"GET /c\r\n");
    end_of(&mut h, &f);
    let turns: Vec<String> = h.global("turns");
    assert_eq!(
        turns,
        ["up:1:true:0:GET /a\r\nGET /b\r\n", "down:1:true:0:200 a200 b", "up:1:true:16:GET /c\r\n",]
    );
}

#[test]
fn a_long_monologue_comes_in_parts_and_a_rule_can_still_reset() {
    let cfg = RulesConfig { monologue_cap: 4, ..RulesConfig::default() };
    let mut h = Harness::with_config(MONOLOGUES, &cfg);
    let f = tcp_flow(53);
    assert_eq!(h.data(&f, Direction::Up, b"abcdefghij"), Action::Accept);
    assert_eq!(h.data(&f, Direction::Up, b"QUIT"), Action::Accept);
    // The server's reply ends the client's turn: the reset acts on its packet.
    assert_eq!(h.data(&f, Direction::Down, b"bye"), Action::Reset);
    let turns: Vec<String> = h.global("turns");
    assert_eq!(turns, ["up:1:false:0:abcd", "up:2:false:4:efgh", "up:3:false:8:ijQU", "up:4:true:12:IT"]);
}

#[test]
fn a_fin_ends_one_direction_and_the_decision_acts_on_its_packet() {
    let mut h = Harness::new(
        r#"haka.rule { on = haka.dissectors.tcp_connection.events.receive_data, options = { streamed = true },
          eval = function (flow, iter, dir)
            local all = iter:sub("all")
            ends = (ends or "") .. dir .. "=" .. (all and all:asstring() or "") .. " "
            if dir == "up" and all:asstring() == "QUIT" then flow:reset() end
          end }"#,
    );
    let f = tcp_flow(54);
    assert_eq!(h.data(&f, Direction::Up, b"QU"), Action::Accept);
    assert_eq!(h.data(&f, Direction::Up, b"IT"), Action::Accept);
    assert_eq!(h.data(&f, Direction::Down, b"bye"), Action::Accept);
    assert_eq!(h.rules.stream_end(&cx(), &f, Direction::Up), Action::Reset);
    assert_eq!(h.global::<String>("ends"), "up=QUIT ");
    // A second end of the same stream changes nothing.
    assert_eq!(h.rules.stream_end(&cx(), &f, Direction::Up), Action::Accept);
    end_of(&mut h, &f);
    assert_eq!(h.global::<String>("ends"), "up=QUIT down=bye ");
}

#[test]
fn a_gap_ends_streams_and_turns_and_is_an_event() {
    let mut h = Harness::new(
        r#"local ev = haka.dissectors.tcp_connection.events
        seen = {}
        haka.rule { on = ev.receive_data, options = { streamed = true },
          eval = function (flow, iter, dir)
            local all = iter:sub("all")
            seen[#seen + 1] = "stream " .. dir .. " " .. (all and all:asstring() or "") .. " meter " .. iter.meter
          end }
        haka.rule { on = ev.monologue, eval = function (flow, data, dir, part)
            seen[#seen + 1] = "turn " .. dir .. " " .. data:asstring() .. " at " .. part.offset end }
        haka.rule { on = ev.gap, eval = function (flow, gap, dir)
            seen[#seen + 1] = string.format("gap %s %d+%d", dir, gap.offset, gap.length) end }"#,
    );
    let f = tcp_flow(55);
    h.data(&f, Direction::Up, b"atta");
    assert_eq!(h.rules.gap(&cx(), &f, Direction::Up, 4, 10), Action::Accept);
    h.data(&f, Direction::Up, b"ck");
    end_of(&mut h, &f);
    let seen: Vec<String> = h.global("seen");
    // "atta" and "ck" are never joined: the pattern cannot match across the hole.
    assert_eq!(
        seen,
        [
            "stream up atta meter 4",
            "turn up atta at 0",
            "gap up 4+10",
            "stream up ck meter 2",
            "stream down  meter 0",
            "turn up ck at 14",
        ]
    );
    assert_eq!(h.errors(), 0);
}

/// Haka's streamed regexp idiom: `re:match(iter)` across chunks.
const STREAMED_REGEXP: &str = r#"
    local rem = require("regexp/pcre")
    local re = rem.re:compile("a%d+b", rem.re.CASE_INSENSITIVE)
    results = {}
    haka.rule { on = haka.dissectors.tcp_connection.events.receive_data, options = { streamed = true },
      eval = function (flow, iter, dir)
        if dir ~= "up" then return end
        while true do
          local sub = re:match(iter, true)
          if not sub then results[#results + 1] = "eof at " .. iter.meter break end
          results[#results + 1] = sub:asstring() .. " ends at " .. iter.meter
          if #results == 2 then flow:reset() end
        end
      end }
"#;

#[test]
fn regexp_match_on_an_iterator_spans_chunks_and_leaves_the_iterator_after_the_match() {
    let mut h = Harness::new(STREAMED_REGEXP);
    let f = tcp_flow(56);
    // "A12" + "3" + "4B" completes the first match in the third chunk.
    assert_eq!(h.data(&f, Direction::Up, b"xxA12"), Action::Accept);
    assert_eq!(h.data(&f, Direction::Up, b"3"), Action::Accept);
    assert_eq!(h.data(&f, Direction::Up, b"4Byya"), Action::Accept);
    // The second match completes here: the rule resets on this chunk.
    assert_eq!(h.data(&f, Direction::Up, b"9b"), Action::Reset);
    let results: Vec<String> = h.global("results");
    assert_eq!(results, ["A1234B ends at 8", "a9b ends at 13"]);
    assert_eq!(h.errors(), 0);
}

#[test]
fn regexp_match_on_an_iterator_without_a_match_ends_at_eof() {
    let mut h = Harness::new(STREAMED_REGEXP);
    let f = tcp_flow(57);
    h.data(&f, Direction::Up, b"no match here, a12 without its b");
    end_of(&mut h, &f);
    let results: Vec<String> = h.global("results");
    assert_eq!(results, ["eof at 32"]);
    // The module-level form and plain values still work.
    let r: (String, i64, i64) =
        h.eval(r#"local rem = require("regexp/pcre") return rem.re:match("a%d+", "xa42")"#).unwrap();
    assert_eq!(r, ("a42".to_owned(), 1, 4));
}

#[test]
fn regexp_match_on_an_iterator_sees_the_end_of_the_stream() {
    // `$` matches only once the sink is told the stream ended: the iterator
    // path must pass the end on (stream_match.rs).
    let mut h = Harness::new(
        r#"local rem = require("regexp/pcre")
        local re = rem.re:compile("a%d+$")
        results = {}
        haka.rule { on = haka.dissectors.tcp_connection.events.receive_data, options = { streamed = true },
          eval = function (flow, iter, dir)
            if dir ~= "up" then return end
            local sub = re:match(iter, true)
            results[#results + 1] = sub and sub:asstring() or "none"
          end }"#,
    );
    let f = tcp_flow(58);
    h.data(&f, Direction::Up, b"xa1 a12");
    assert_eq!(h.global::<Vec<String>>("results"), Vec::<String>::new(), "not before the end");
    end_of(&mut h, &f);
    assert_eq!(h.global::<Vec<String>>("results"), ["a12"]);
    assert_eq!(h.errors(), 0);
}

/// `re:match` on the rule's own iterator (which sluice steps itself while
/// the rule waits) and on a copy of it (stepped by the rule), over a stream
/// much longer than the 64 KiB the match keeps behind its scan.
const LONG_STREAM_REGEXP: &str = r#"
    local rem = require("regexp/pcre")
    local re = rem.re:compile("a%d+b")
    results = {}
    haka.rule { on = haka.dissectors.tcp_connection.events.receive_data, options = { streamed = true },
      eval = function (flow, iter, dir)
        if dir ~= "up" then return end
        local target = iter
        if USE_COPY then target = iter:copy() end
        while true do
          local sub = re:match(target, true)
          if not sub then results[#results + 1] = "eof at " .. target.meter break end
          results[#results + 1] = sub:asstring() .. " ends at " .. target.meter .. " pos " .. target:offset()
        end
        results[#results + 1] = "own iterator at " .. iter.meter
      end }
"#;

fn long_stream_results(use_copy: bool) -> Vec<String> {
    let mut h = Harness::new(LONG_STREAM_REGEXP);
    h.eval::<()>(&format!("USE_COPY = {use_copy}")).unwrap();
    let f = tcp_flow(59);
    // 200 chunks of 1000 bytes, a match split over chunks 150 and 151,
    // another inside chunk 180.
    for i in 0..200 {
        let mut chunk = vec![b'x'; 1000];
        if i == 150 {
            chunk[998..].copy_from_slice(b"a1");
        }
        if i == 151 {
            chunk[..2].copy_from_slice(b"2b");
        }
        if i == 180 {
            chunk[10..14].copy_from_slice(b"a7b.");
        }
        assert_eq!(h.data(&f, Direction::Up, &chunk), Action::Accept);
    }
    end_of(&mut h, &f);
    assert_eq!(h.errors(), 0);
    h.global("results")
}

#[test]
fn regexp_match_on_a_long_stream_leaves_the_same_positions_and_meters_on_the_iterator_or_a_copy() {
    let own = long_stream_results(false);
    assert_eq!(
        own,
        [
            "a12b ends at 151002 pos 151002",
            "a7b ends at 180013 pos 180013",
            "eof at 200000",
            "own iterator at 200000",
        ]
    );
    let copy = long_stream_results(true);
    assert_eq!(copy[..3], own[..3]);
    // The rule's own iterator never moved.
    assert_eq!(copy[3], "own iterator at 0");
}

#[test]
fn a_regexp_match_waiting_for_bytes_still_stops_at_the_stream_buffer_limit() {
    // The mark holds the stream from its start: the waiting match must fail
    // (as every read then does) once more than the limit is held.
    let cfg = RulesConfig { max_held_bytes: 64, ..RulesConfig::default() };
    let mut h = Harness::with_config(
        r#"local rem = require("regexp/pcre")
        local re = rem.re:compile("never")
        haka.rule { on = haka.dissectors.tcp_connection.events.receive_data, options = { streamed = true },
          eval = function (flow, iter, dir)
            iter:mark(true)
            while re:match(iter) do end
          end }"#,
        &cfg,
    );
    let f = tcp_flow(60);
    assert_eq!(h.data(&f, Direction::Up, &[b'x'; 40]), Action::Accept);
    assert_eq!(h.errors(), 0);
    assert_eq!(h.data(&f, Direction::Up, &[b'x'; 40]), Action::DropPacket);
    assert_eq!(h.errors(), 1);
}

#[test]
fn a_rule_waiting_in_a_regexp_match_and_rules_reading_the_chunks_see_the_same_bytes_in_order() {
    // The waiting match is fed each chunk before it is put in the stream;
    // the rules declared before and after it must still read every byte.
    let reader = r#"
        haka.rule { on = haka.dissectors.tcp_connection.events.receive_data, options = { streamed = true },
          eval = function (flow, iter, dir)
            for sub in iter:foreach_available() do seen = (seen or "") .. sub:asstring() end
          end }"#;
    let matcher = r#"
        local re = require("regexp/pcre").re:compile("k%d")
        haka.rule { on = haka.dissectors.tcp_connection.events.receive_data, options = { streamed = true },
          eval = function (flow, iter, dir)
            while true do
              local sub = re:match(iter, true)
              if not sub then break end
              found = (found or "") .. sub:asstring() .. "@" .. iter.meter .. " "
            end
          end }"#;
    for src in [format!("{reader}{matcher}"), format!("{matcher}{reader}")] {
        let mut h = Harness::new(&src);
        let f = tcp_flow(61);
        for chunk in [&b"abc"[..], b"dk", b"1ef", b"ghk2", b"", b"xyz"] {
            assert_eq!(h.data(&f, Direction::Up, chunk), Action::Accept);
        }
        end_of(&mut h, &f);
        assert_eq!(h.global::<String>("seen"), "abcdk1efghk2xyz");
        assert_eq!(h.global::<String>("found"), "k1@6 k2@12 ");
        assert_eq!(h.errors(), 0);
    }
}

#[test]
fn sub_buffers_taken_per_chunk_answer_haka_calls_and_refuse_bad_ones() {
    let mut h = Harness::new(
        r#"local rem = require("regexp/pcre")
        local re = rem.re:compile("c%d")
        haka.rule { on = haka.dissectors.tcp_connection.events.receive_data, options = { streamed = true },
          eval = function (flow, iter, dir)
            for sub in iter:foreach_available() do
              kept = kept or sub
              local function err(f) local ok, e = pcall(f) return ok and "no error" or tostring(e) end
              local sink = re:create_sink()
              r = {
                #sub, sub:size(), tostring(sub), sub:asstring(),
                sub:sub(1, 2):asstring(), sub:sub(2):asstring(), sub:sub(0, "all"):asstring(),
                sub:sub(1, 2.0):asstring(), sub:sub(9, 3):asstring(), sub:sub(2, 100):asstring(),
                sub[1], sub[5], sub[0], sub[6], err(function () return sub[1.0] end),
                select(2, sub:check_size(3)), select(2, sub:check_size(9)), tostring((sub:check_size(9))),
                err(function () return sub:sub(-1) end), err(function () return sub:sub(0, "some") end),
                err(function () return sub:sub(0, -2) end), err(function () return sub.nothing end),
                err(function () return sub.asstring(42) end),
                (re:match(sub)), tostring(sink:feed(sub, true)),
              }
            end
          end }"#,
    );
    h.data(&tcp_flow(62), Direction::Up, b"abc1e");
    let r: Vec<String> =
        h.eval("local out = {} for i = 1, 25 do out[i] = tostring(r[i]) end return out").unwrap();
    let want = ["5", "5", "abc1e", "abc1e", "bc", "c1e", "abc1e", "bc", "", "c1e", "97", "101", "nil", "nil"];
    assert_eq!(r[..want.len()], want);
    assert!(r[want.len()].contains("sub-buffer has no field number"), "{r:?}");
    assert_eq!(r[want.len() + 1..want.len() + 4], ["3", "5", "false"]);
    let want = &r[..want.len() + 4];
    let errors = &r[want.len()..want.len() + 5];
    assert!(errors[0].contains("sub:sub offset starts at 0"), "{errors:?}");
    assert!(errors[1].contains("size must be a non-negative integer or 'all'"), "{errors:?}");
    assert!(errors[2].contains("size must be a non-negative integer or 'all'"), "{errors:?}");
    assert!(errors[3].contains("sub-buffer has no field 'nothing'"), "{errors:?}");
    assert!(errors[4].contains("sub-buffer method called on something else"), "{errors:?}");
    assert_eq!(r[want.len() + 5..], ["c1", "true"]);
    // It keeps its bytes after its event and after the stream moved on.
    h.data(&tcp_flow(62), Direction::Up, b"zz");
    assert_eq!(h.eval::<String>("return kept:asstring() .. '|' .. r[4]").unwrap(), "abc1e|zz");
}

#[test]
fn a_run_of_bytes_spanning_chunks_is_taken_whole() {
    // The bytes of three chunks wait in the stream until 10 are there; the
    // sub-buffer taken then spans three blocks.
    let mut h = Harness::new(
        r#"haka.rule { on = haka.dissectors.tcp_connection.events.receive_data, options = { streamed = true },
          eval = function (flow, iter, dir)
            iter:check_available(10)
            local first = iter:sub("available")
            local second = iter:sub("available")
            got = first:asstring() .. " " .. #first .. " " .. second:asstring() .. " " .. iter.meter
          end }"#,
    );
    let f = tcp_flow(63);
    for chunk in [&b"abc"[..], b"defg", b"hij", b"kl"] {
        h.data(&f, Direction::Up, chunk);
    }
    assert_eq!(h.global::<String>("got"), "abcdefghij 10 kl 12");
    assert_eq!(h.errors(), 0);
}

#[test]
fn sub_buffers_a_rule_keeps_count_in_the_lua_memory_limit() {
    // Keeping every run it takes, the rule grows the Lua heap by the bytes
    // it keeps, until the memory limit stops it.
    let cfg = RulesConfig { memory_limit: 8 << 20, ..RulesConfig::default() };
    let mut h = Harness::with_config(
        r#"kept = {}
        haka.rule { on = haka.dissectors.tcp_connection.events.receive_data, options = { streamed = true },
          eval = function (flow, iter, dir)
            for sub in iter:foreach_available() do kept[#kept + 1] = sub end
          end }"#,
        &cfg,
    );
    let f = tcp_flow(64);
    let chunk = vec![b'x'; 64 * 1024];
    let mut accepted = 0;
    for _ in 0..256 {
        if h.data(&f, Direction::Up, &chunk) != Action::Accept {
            break;
        }
        accepted += 1;
    }
    assert!((64..128).contains(&accepted), "stopped after {accepted} chunks of 64 KiB");
    assert_eq!(h.errors(), 1);
    assert!(h.rules.lua.used_memory() < 8 << 20);
}
