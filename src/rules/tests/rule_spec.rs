//! `haka.rule{}`: the keys it knows, its options, and keys it refuses.

use super::*;

/// The load error of `src`, loaded as `r.lua` after one empty line.
fn load_error(src: &str) -> String {
    let (alerts, _) = AlertSink::memory();
    let sinks = RuleSinks { alerts, stats: Arc::new(Stats::new()) };
    match LuaRules::from_source("r.lua", &format!("\n{src}"), &RulesConfig::default(), sinks) {
        Ok(_) => panic!("must not load: {src}"),
        Err(e) => e.to_string(),
    }
}

const DATA: &str = "on = haka.dissectors.tcp_connection.events.receive_data, eval = function() end";

#[test]
fn unknown_rule_keys_are_refused_with_the_key_and_line() {
    let cases = [
        (format!("haka.rule{{ {DATA}, evl = 1 }}"), "haka.rule: unknown key 'evl'"),
        (format!("haka.rule{{ {DATA}, option = {{ streamed = true }} }}"), "unknown key 'option'"),
        (format!("haka.rule{{ {DATA}, function() end }}"), "unexpected list entry [1]"),
        (format!("haka.rule{{ {DATA}, [true] = 1 }}"), "unexpected key of type boolean"),
    ];
    for (src, want) in &cases {
        let err = load_error(src);
        assert!(err.starts_with("r.lua:2: "), "{err}");
        assert!(err.contains(want), "{src}: {err}");
        assert!(err.contains("known: on, eval, name, options"), "{err}");
    }
}

#[test]
fn unknown_options_are_refused_by_name() {
    let cases = [
        (
            format!("haka.rule{{ {DATA}, options = {{ stream = true }} }}"),
            "haka.rule: options: unknown option 'stream'",
        ),
        (format!("haka.rule{{ {DATA}, options = {{ streamed = 1 }} }}"), "'streamed' must be true or false"),
        (format!("haka.rule{{ {DATA}, options = true }}"), "'options' must be a table"),
    ];
    for (src, want) in &cases {
        let err = load_error(src);
        assert!(err.starts_with("r.lua:2: "), "{err}");
        assert!(err.contains(want), "{src}: {err}");
    }
}

#[test]
fn known_keys_and_the_streamed_option_are_kept() {
    let h = Harness::new(&format!(
        "haka.rule{{ name = 'plain', {DATA} }}
         haka.rule{{ name = 'empty options', options = {{}}, {DATA} }}
         haka.rule{{ name = 'streamed', options = {{ streamed = true }}, {DATA} }}
         haka.rule{{ name = 'not streamed', options = {{ streamed = false }}, {DATA} }}"
    ));
    let rules = &h.rules.rules[Event::TcpData.index()];
    let got: Vec<(bool, bool)> =
        rules.iter().map(|r| (r.label.starts_with("streamed "), r.streamed)).collect();
    assert_eq!(got, vec![(false, false), (false, false), (true, true), (false, false)]);
}

#[test]
fn hakas_deprecated_hook_key_still_names_the_event() {
    let mut h = Harness::new(
        "haka.rule{ hook = haka.dissectors.tcp.events.receive_packet, eval = function(p) p:drop() end }",
    );
    assert_eq!(h.packet(Event::TcpPacket, &syn(), None), Action::DropPacket);
    let err = load_error(
        "haka.rule{ on = haka.dissectors.tcp.events.receive_packet, hook = haka.dissectors.tcp.events.receive_packet,
           eval = function() end }",
    );
    assert!(err.contains("give 'on' only"), "{err}");
}
