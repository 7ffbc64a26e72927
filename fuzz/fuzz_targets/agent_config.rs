//! The agent configuration parser (YAML or JSON, written by people and by the webhook): it never
//! panics, and whatever it accepts survives the trip through JSON that the webhook makes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = injector::agent_config::parse(text) else {
        return;
    };
    let _ = config.validate();
    let json = serde_json::to_string(&config).expect("a parsed config serialises");
    let back = injector::agent_config::parse(&json).expect("its JSON parses again");
    assert_eq!(back, config, "the JSON trip changed the config");
});
