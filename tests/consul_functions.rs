//! consul-template's helper functions and the Sprig ones, with `bao agent` as the oracle: the
//! same templates go to OpenBao's agent and to `hydrant agent --once` against one dev server,
//! and the files must be byte-identical. Values that differ on every run (times, random text)
//! are compared by their shape.

use serde_json::json;

use crate::consul_template::{assert_same, both, case, seeded};
use crate::util::Vault;

/// The secrets the function tests read besides `seeded`'s.
fn more_secrets(vault: &Vault) {
    vault.kv2_put(
        "app/lists",
        json!({"small": ["a"], "big": ["a", "b", "c"], "other": ["x", "a"], "nums": [1, 2]}),
    );
    vault.kv2_put(
        "app/paths",
        json!({"a/b": "1", "a/c": "2", "d": "3", "x/y/z": "4"}),
    );
    for name in ["merge-a", "merge-c"] {
        vault.kv2_put(
            &format!("app/{name}"),
            json!({"a": "1", "e": "", "m": {"x": "1"}, "l": ["1"], "keep": "k"}),
        );
    }
    for name in ["merge-b", "merge-d"] {
        vault.kv2_put(
            &format!("app/{name}"),
            json!({"a": "2", "e": "s", "m": {"y": "2"}, "l": ["2"], "n": null, "z": "3"}),
        );
    }
    vault.kv2_put(
        "app/docs",
        json!({
            "json": "{\"n\": 1000000, \"f\": 1.5, \"small\": 0.00001, \"s\": \"x\", \"l\": [1, \"a\", null, true], \"m\": {\"k\": 2}}",
            "yaml": "a: 1\nb: [x, 2.5]\nc: {d: yes, e: null}\nf: \"quoted\"\n",
            "b64": "aGVsbG8gd29ybGQ=",
        }),
    );
}

#[test]
fn string_helpers_match_bao_agent() {
    let (vault, token) = seeded();
    more_secrets(&vault);
    assert_same(
        &vault,
        &token,
        &[
            case(
                "base64",
                "{{ \"aGVsbG8gd29ybGQ=\" | base64Decode }}|{{ \"hello world\" | base64Encode }}|{{ \"aGk_Pj4=\" | base64URLDecode }}|{{ \"hi?>>\" | base64URLEncode }}|{{ \"aGVs\\nbG8=\" | base64Decode }}\n\
                 {{ with secret \"secret/data/app/docs\" }}{{ .Data.data.b64 | base64Decode }}{{ end }}\n",
            ),
            case(
                "trim-case",
                "{{ \"  x y \\n \" | trimSpace }}|{{ \"xyhixy\" | trim \"yx\" }}|{{ \"prefix-body\" | trimPrefix \"prefix-\" }}|{{ \"body.txt\" | trimSuffix \".txt\" }}|{{ \"body\" | trimSuffix \"x\" }}\n\
                 {{ \"Hello World ÄÖ\" | toLower }}|{{ \"hello wörld\" | toUpper }}|{{ \"hello world-foo o'neil x_y 3rd a..b x.y ǆa ﬁx ß\" | toTitle }}\n",
            ),
            case(
                "replace-regex",
                "{{ \"a-b-c\" | replaceAll \"-\" \"+\" }}|{{ \"abc\" | replaceAll \"\" \".\" }}|{{ \"foo123bar45\" | regexReplaceAll \"[0-9]+\" \"<$0>\" }}|{{ \"v1.2.3\" | regexReplaceAll `v(\\d+)\\.(\\d+)` \"${2}.$1\" }}|{{ \"abc\" | regexMatch \"^a.c$\" }}|{{ \"x\" | regexMatch \"^a\" }}|{{ \"a b\" | regexReplaceAll `\\s` \"_\" }}\n",
            ),
            case(
                "hashes",
                "{{ \"secret\" | sha256Hex }}|{{ \"secret\" | md5sum }}|{{ hmacSHA256Hex \"message\" \"key\" }}|{{ \"\" | md5sum }}\n",
            ),
            case(
                "indent",
                "{{ indent 4 \"a\\nb\\n\\nc\\n\" }}|{{ \"x\" | indent 2 }}|{{ indent 0 \"y\" }}\n\
                 {{ with secret \"secret/data/app/db\" }}  password: {{ .Data.data.password | indent 2 }}{{ end }}\n",
            ),
        ],
    );
}

#[test]
fn list_and_map_helpers_match_bao_agent() {
    let (vault, token) = seeded();
    more_secrets(&vault);
    assert_same(
        &vault,
        &token,
        &[
            case(
                "split-join",
                "{{ $l := split \",\" \"a,b,c\" }}{{ $l }}|{{ join \";\" $l }}|{{ split \",\" \"  \" }}|{{ split \"\" \"héllo\" }}|{{ split \",\" \" a,,b \" }}|{{ len $l }}\n\
                 {{ splitToMap \",\" \"=\" \"a=1,b=2,c,=e,d=x=y\" }}|{{ splitToMap \",\" \"=\" \"\" }}\n\
                 {{ range $i, $s := split \"/\" \"x/y\" }}{{ $i }}:{{ $s }} {{ end }}\n",
            ),
            case(
                "loop",
                "{{ range $i := loop 3 }}{{ $i }}{{ end }}|{{ range loop 2 5 }}{{ . }}{{ end }}|{{ range loop \"2\" \"4\" }}{{ . }}{{ end }}|{{ range loop 3 1 }}x{{ end }}\n\
                 {{ with secret \"secret/data/app/db\" }}{{ range loop 5430 .Data.data.port }}{{ . }},{{ end }}{{ end }}\n",
            ),
            case(
                "contains-in",
                "{{ with secret \"secret/data/app/lists\" }}{{ with .Data.data }}\
                 {{ .big | contains \"a\" }}|{{ contains \"z\" .big }}|{{ in .big \"b\" }}|{{ in .nums 1 }}|{{ in \"hello\" \"ell\" }}|{{ in \"hello\" \"z\" }}|{{ contains \"a\" (split \",\" \"a,b\") }}\n\
                 {{ containsAll .small .big }}|{{ containsAll .other .big }}|{{ containsAny .other .big }}|{{ containsAny .small .other }}|{{ containsNone .other .small }}|{{ containsNone .nums .big }}|{{ containsNotAll .other .big }}|{{ containsNotAll .small .big }}\
                 {{ end }}{{ end }}\n",
            ),
            case(
                "explode",
                "{{ with secret \"secret/data/app/paths\" }}{{ explodeMap .Data.data }}|{{ (explodeMap .Data.data).a.b }}{{ end }}\n",
            ),
            case(
                "merge",
                "{{ with secret \"secret/data/app/merge-a\" }}{{ $a := .Data.data }}{{ with secret \"secret/data/app/merge-b\" }}{{ mergeMap $a .Data.data }}{{ end }}{{ end }}\n\
                 {{ with secret \"secret/data/app/merge-c\" }}{{ $c := .Data.data }}{{ with secret \"secret/data/app/merge-d\" }}{{ mergeMapWithOverride $c .Data.data }}{{ end }}{{ end }}\n",
            ),
        ],
    );
}

/// `mergeMap` and Sprig's `merge`, `set` and `unset` change the map in their first argument
/// (Go's maps are references), which templates rely on with `{{ $_ := sprig_merge $config ...
/// }}`: hydrant gives the variable the changed map, in a block or not, piped or not.
#[test]
fn merges_into_a_variable_change_it_as_in_bao_agent() {
    let (vault, token) = seeded();
    more_secrets(&vault);
    assert_same(
        &vault,
        &token,
        &[case(
            "merge-in-place",
            "{{ $cfg := sprig_dict \"base\" \"b\" }}{{ with secret \"secret/data/app/merge-a\" }}{{ $_ := sprig_merge $cfg .Data.data }}{{ end }}{{ $cfg | toJSON }}\n\
             {{ with secret \"secret/data/app/merge-b\" }}{{ $_ := mergeMapWithOverride $cfg .Data.data }}{{ end }}{{ $cfg | toJSON }}\n\
             {{ $d := sprig_dict \"a\" 1 }}{{ range $i := loop 3 }}{{ $_ := sprig_dict (print \"k\" $i) $i | sprig_mergeOverwrite $d }}{{ end }}{{ $d }}\n\
             {{ $e := sprig_dict }}{{ $r := mergeMap $e (sprig_dict \"x\" \"1\") }}{{ $e }}|{{ $r }}|{{ $f := sprig_dict \"z\" 1 }}{{ $f = sprig_merge $f (sprig_dict \"y\" 2) }}{{ $f }}\n\
             {{ $s := sprig_dict \"a\" 1 }}{{ $_ := sprig_set $s \"b\" 2 }}{{ range $k := sprig_list \"c\" \"d\" }}{{ $_ := sprig_set $s $k $k }}{{ end }}{{ $_ := sprig_unset $s \"a\" }}{{ $s }}|{{ $_ := sprig_unset $s \"zz\" }}{{ $s | toJSON }}\n",
        )],
    );
}

#[test]
fn parsing_and_arithmetic_helpers_match_bao_agent_floats_printed_as_go_prints_them() {
    let (vault, token) = seeded();
    more_secrets(&vault);
    assert_same(
        &vault,
        &token,
        &[
            case(
                "parse",
                "{{ parseBool \"true\" }}|{{ parseBool \"F\" }}|{{ parseBool \"\" }}|{{ parseFloat \"1000000\" }}|{{ parseFloat \"0.25\" }}|{{ parseFloat \"1e-7\" }}|{{ parseFloat \"123456\" }}|{{ parseFloat \"\" }}|{{ parseInt \"-42\" }}|{{ parseInt \"\" }}|{{ parseUint \"42\" }}\n",
            ),
            case(
                "json-yaml",
                "{{ with secret \"secret/data/app/docs\" }}{{ $j := parseJSON .Data.data.json }}{{ $j }}|{{ $j.n }}|{{ $j.small }}|{{ $j.l }}|{{ index $j.l 0 }}|{{ $j.m.k }}|{{ parseJSON \"\" }}|{{ parseJSON \"[]\" }}\n\
                 {{ $y := parseYAML .Data.data.yaml }}{{ $y }}|{{ $y.b }}|{{ $y.c.d }}|{{ $y.f }}{{ end }}\n\
                 {{ parseYAML \"a: y\\nb: on\\nc: 0777\\nd: 1_000\\ne: 2001-12-14\\nf: ~\\ng: 0x1F\\n\" }}|{{ parseYAML \"- 1.0\\n- 1e3\\n\" }}\n",
            ),
            case(
                "arithmetic",
                "{{ add 1 2 }}|{{ 5 | subtract 2 }}|{{ multiply 3 4 }}|{{ 7 | divide 2 }}|{{ 7 | modulo 3 }}|{{ add 1.5 2 }}|{{ divide 4 10.0 }}|{{ minimum 3 5 }}|{{ maximum 3 5.5 }}|{{ minimum 2.5 1 }}|{{ multiply 1000 1000.0 }}|{{ parseUint \"5\" | add 2 }}|{{ parseInt \"-3\" | multiply (parseFloat \"1e6\") }}|{{ subtract 1 -5 }}|{{ divide 3 1.0 }}\n",
            ),
        ],
    );
}

#[test]
fn sprig_string_list_and_dict_functions_match_bao_agent() {
    let (vault, token) = seeded();
    assert_same(
        &vault,
        &token,
        &[
            case(
                "sprig-strings",
                "{{ sprig_hello }}|{{ sprig_trim \"  a  \" }}|{{ sprig_upper \"abc\" }}|{{ sprig_lower \"ABC\" }}|{{ sprig_title \"hello world_x\" }}|{{ sprig_untitle \"Hello World\" }}|{{ sprig_substr 1 3 \"hello\" }}|{{ sprig_trunc 3 \"hello\" }}|{{ sprig_trunc -2 \"hello\" }}|{{ sprig_repeat 3 \"ab\" }}\n\
                 {{ sprig_trimAll \"$\" \"$5.00$\" }}|{{ sprig_trimSuffix \"-\" \"a-\" }}|{{ sprig_trimPrefix \"-\" \"-a\" }}|{{ sprig_nospace \"a b\\tc\" }}|{{ sprig_contains \"ell\" \"hello\" }}|{{ sprig_hasPrefix \"he\" \"hello\" }}|{{ sprig_hasSuffix \"lo\" \"hello\" }}\n\
                 {{ sprig_quote \"a\\\"b\" 1 }}|{{ sprig_squote \"a\" 2 }}|{{ sprig_cat \"a\" 1 nil \"b\" }}|{{ sprig_indent 2 \"a\\nb\" }}|{{ sprig_nindent 2 \"a\" }}|{{ sprig_replace \"a\" \"o\" \"banana\" }}|{{ sprig_plural \"one\" \"many\" 2 }}|{{ sprig_plural \"one\" \"many\" 1 }}|{{ sprig_toString 42 }}\n\
                 {{ sprig_split \",\" \"a,b\" }}|{{ sprig_splitn \",\" 2 \"a,b,c\" }}|{{ sprig_splitList \",\" \"a,b\" }}|{{ sprig_toStrings (sprig_list 1 \"a\" nil) }}|{{ sprig_join \"-\" (sprig_list 1 \"a\" 2.5) }}|{{ sprig_sortAlpha (sprig_list \"b\" \"a\" \"C\") }}\n",
            ),
            case(
                "sprig-lists",
                "{{ $l := sprig_list 1 \"a\" 2 }}{{ sprig_append $l \"x\" }}|{{ sprig_prepend $l 0 }}|{{ sprig_first $l }}|{{ sprig_last $l }}|{{ sprig_rest $l }}|{{ sprig_initial $l }}|{{ sprig_reverse $l }}|{{ $l }}\n\
                 {{ sprig_uniq (sprig_list 1 1 \"a\" \"a\" 2) }}|{{ sprig_compact (sprig_list 0 \"\" \"a\" nil 1) }}|{{ sprig_without $l \"a\" }}|{{ sprig_has \"a\" $l }}|{{ sprig_has 3 $l }}|{{ sprig_concat $l (sprig_list \"z\") }}|{{ sprig_chunk 2 (sprig_list 1 2 3 4 5) }}\n\
                 {{ sprig_until 3 }}|{{ sprig_until -2 }}|{{ sprig_untilStep 0 10 3 }}|{{ sprig_seq 3 }}|{{ sprig_seq 2 5 }}|{{ sprig_seq 0 2 6 }}|{{ sprig_seq 3 1 }}|{{ sprig_first (sprig_list) }}\n\
                 {{ sprig_slice (sprig_list 1 2 3 4) 1 3 }}|{{ sprig_slice (sprig_list 1 2 3) 1 }}|{{ sprig_slice (sprig_list 1 2) }}|{{ sprig_slice (sprig_list) }}|{{ sprig_mustSlice (sprig_list 1 2 3) \"1\" }}|{{ sprig_slice (sprig_splitList \",\" \"a,b,c\") 2 3 }}\n",
            ),
            case(
                "sprig-dicts",
                "{{ $d := sprig_dict \"a\" 1 \"b\" \"two\" \"c\" }}{{ $d }}|{{ sprig_get $d \"a\" }}|{{ sprig_get $d \"zz\" }}|{{ sprig_hasKey $d \"b\" }}|{{ sprig_pluck \"a\" $d (sprig_dict \"a\" 3) }}|{{ sprig_keys $d (sprig_dict \"z\" 1) | sprig_sortAlpha }}\n\
                 {{ sprig_pick $d \"a\" \"c\" }}|{{ sprig_omit $d \"a\" }}|{{ sprig_merge (sprig_dict \"a\" 1) (sprig_dict \"a\" 2 \"b\" 3) }}|{{ sprig_mergeOverwrite (sprig_dict \"a\" 1) (sprig_dict \"a\" 2 \"b\" 3) }}|{{ sprig_values (sprig_dict \"x\" 1) }}\n\
                 {{ sprig_dig \"a\" \"b\" \"dflt\" (sprig_dict \"a\" (sprig_dict \"b\" \"found\")) }}|{{ sprig_dig \"a\" \"x\" \"dflt\" (sprig_dict \"a\" (sprig_dict \"b\" \"found\")) }}|{{ sprig_deepCopy $d }}\n",
            ),
        ],
    );
}

#[test]
fn sprig_defaults_encodings_math_hashes_regexes_and_paths_match_bao_agent() {
    let (vault, token) = seeded();
    assert_same(
        &vault,
        &token,
        &[
            case(
                "sprig-defaults",
                "{{ sprig_default \"d\" \"\" }}|{{ sprig_default \"d\" \"v\" }}|{{ \"\" | sprig_default \"pipe\" }}|{{ sprig_empty \"\" }}|{{ sprig_empty 0 }}|{{ sprig_empty (sprig_list) }}|{{ sprig_empty \"x\" }}|{{ sprig_coalesce \"\" 0 \"x\" }}|{{ sprig_all 1 \"a\" }}|{{ sprig_all 1 \"\" }}|{{ sprig_any 0 \"\" }}|{{ sprig_ternary \"y\" \"n\" true }}|{{ false | sprig_ternary \"y\" \"n\" }}\n\
                 {{ with secret \"secret/data/app/config\" }}{{ .Data.data.empty | sprig_default \"fallback\" }}|{{ .Data.data.none | sprig_default \"nil-fallback\" }}|{{ .Data.data.log_level | sprig_default \"x\" }}{{ end }}\n",
            ),
            case(
                "sprig-encodings",
                "{{ sprig_b64enc \"hello\" }}|{{ sprig_b64dec \"aGVsbG8=\" }}|{{ sprig_b64dec \"!!\" }}|{{ sprig_b32enc \"hello\" }}|{{ sprig_b32dec \"NBSWY3DP\" }}\n\
                 {{ sprig_toJson (sprig_dict \"a\" \"<b>\" \"n\" 1) }}|{{ sprig_toPrettyJson (sprig_list 1 2) }}|{{ sprig_toRawJson (sprig_dict \"a\" \"<b>\") }}|{{ (sprig_fromJson \"{\\\"a\\\":[\\\"x\\\"]}\").a }}|{{ sprig_fromJson \"bad\" }}\n",
            ),
            case(
                "sprig-math",
                "{{ sprig_add 1 2 3 }}|{{ sprig_add1 5 }}|{{ sprig_sub 5 2 }}|{{ sprig_mul 2 3 4 }}|{{ sprig_div 7 2 }}|{{ sprig_mod 7 3 }}|{{ sprig_max 1 5 3 }}|{{ sprig_min 4 2 6 }}|{{ sprig_biggest 1 9 }}|{{ sprig_maxf 1 2.5 }}|{{ sprig_minf 1.5 2 }}\n\
                 {{ sprig_int \"42\" }}|{{ sprig_int64 \"0x10\" }}|{{ sprig_float64 \"1.5\" }}|{{ sprig_atoi \"12\" }}|{{ sprig_floor 1.7 }}|{{ sprig_ceil 1.2 }}|{{ sprig_round 3.14159 2 }}|{{ sprig_add \"3\" 4 }}|{{ sprig_float64 \"2e6\" }}\n\
                 {{ with secret \"secret/data/app/db\" }}{{ sprig_add .Data.data.port 1 }}|{{ sprig_int .Data.data.port }}{{ end }}\n",
            ),
            case(
                "sprig-hashes",
                "{{ sprig_sha1sum \"abc\" }}|{{ sprig_sha256sum \"abc\" }}|{{ sprig_adler32sum \"abc\" }}\n",
            ),
            case(
                "sprig-regex",
                "{{ sprig_regexMatch \"^[a-z]+$\" \"abc\" }}|{{ sprig_regexFind \"[0-9]+\" \"ab12cd34\" }}|{{ sprig_regexFindAll \"[0-9]+\" \"ab12cd34ef5\" -1 }}|{{ sprig_regexFindAll \"[0-9]+\" \"ab12cd34ef5\" 2 }}\n\
                 {{ sprig_regexReplaceAll \"a(x*)b\" \"-ab-axxb-\" \"${1}W\" }}|{{ sprig_regexReplaceAllLiteral \"a(x*)b\" \"-ab-axxb-\" \"${1}\" }}|{{ sprig_regexSplit \"z+\" \"pizza\" -1 }}|{{ sprig_regexSplit \"\" \"abc\" 2 }}|{{ sprig_regexSplit \",\" \"a,b,\" -1 }}|{{ sprig_regexQuoteMeta \"1.2+3-x\" }}\n",
            ),
            case(
                "sprig-paths-env",
                "{{ sprig_base \"/a/b.txt\" }}|{{ sprig_dir \"/a/b.txt\" }}|{{ sprig_clean \"a//b/../c\" }}|{{ sprig_ext \"x.tar.gz\" }}|{{ sprig_isAbs \"/x\" }}|{{ sprig_env \"HYDRANT_NO_SUCH_VAR\" }}|{{ sprig_expandenv \"a${HYDRANT_NO_SUCH_VAR}b\" }}\n\
                 {{ sprig_osBase \"/a/b.txt\" }}|{{ sprig_osDir \"/a/b.txt\" }}|{{ sprig_osClean \"a//b/../c\" }}|{{ sprig_osExt \"x.tar.gz\" }}|{{ sprig_osIsAbs \"x\" }}|{{ sprig_osBase \"\" }}|{{ sprig_osDir \"\" }}\n",
            ),
        ],
    );
}

#[test]
fn to_yaml_matches_bao_agent() {
    let (vault, token) = seeded();
    vault.kv2_put(
        "app/yaml",
        json!({
            "plain": "hello world", "bool-like": "yes", "num-like": "0777", "float-like": "1e3",
            "date-like": "2001-12-14", "empty": "", "null-like": "~", "dash": "- x", "colon": "a: b",
            "hash": "a #b", "quote": "it's", "lead": " x", "multi": "line one\nline two\n",
            "multi-nl": "a\n\nb", "tab": "a\tb", "unicode": "héllo ✓", "long": "word ".repeat(30),
            "n": 5432, "f": 0.25, "big": 1e21, "t": true, "z": null, "list": ["a", 1, {"k": "v"}, []],
            "nested": {"m": {"deep": [1, [2, 3]]}, "e": {}}, "a10": 1, "a2": 2, "y": "n",
        }),
    );
    assert_same(
        &vault,
        &token,
        &[
            case(
                "yaml",
                "{{ with secret \"secret/data/app/yaml\" }}{{ .Data.data | toYAML }}\n---\n{{ .Data | toYAML }}{{ end }}\n",
            ),
            case(
                "yaml-scalars",
                "{{ toYAML \"x\" }}|{{ toYAML 1 }}|{{ toYAML (parseJSON \"[1.5, 1000000]\") }}|{{ toYAML (split \",\" \"a,b\") }}|{{ toYAML \"a\\nb\" }}|{{ toYAML (parseJSON \"{}\") }}\n",
            ),
        ],
    );
}

#[test]
fn to_toml_matches_bao_agent() {
    let (vault, token) = seeded();
    vault.kv2_put(
        "app/toml",
        json!({
            "name": "app", "port": 5432, "ratio": 0.25, "big": 1e21, "on": true, "none": null,
            "quote\"d key": "tab\there \"q\" \\ \u{1}", "list": [1, 2], "strings": ["a", "b"],
            "empty": [], "mixed": [1, "a", [true]], "db": {"host": "h", "opts": {"ssl": true}, "replicas": [{"h": "r1"}, {"h": "r2"}]},
            "servers": [{"name": "a", "tags": {"x": "1"}}, {"name": "b"}], "inline": [{"a": {"b": 1}}, 2],
            "": "empty key", "b-ok_1": 1,
        }),
    );
    assert_same(
        &vault,
        &token,
        &[
            case(
                "toml",
                "{{ with secret \"secret/data/app/toml\" }}{{ .Data.data | toTOML }}{{ end }}\n",
            ),
            case(
                "toml-parsed",
                "{{ parseJSON \"{\\\"n\\\": 1000000, \\\"f\\\": 1.5, \\\"t\\\": {\\\"a\\\": {\\\"b\\\": [1]}}}\" | toTOML }}|{{ toTOML (parseJSON \"{}\") }}|{{ toTOML (sprig_dict \"k\" (sprig_list)) }}\n",
            ),
        ],
    );
}

/// Times and random text differ on every run: both agents must give the same shapes.
#[test]
fn timestamps_and_random_values_have_bao_agent_s_shapes() {
    let (vault, token) = seeded();
    let cases = [case(
        "shapes",
        "{{ timestamp }}\n{{ timestamp \"2006-01-02 15:04 Mon\" }}\n{{ timestamp \"unix\" }}\n{{ sprig_randAlphaNum 10 }}\n{{ sprig_randAlpha 5 }}\n{{ sprig_randNumeric 4 }}\n{{ sprig_uuidv4 }}\n{{ sprig_randAscii 6 }}",
    )];
    let outputs = both(&vault, &token, &cases);
    let bao = outputs.bao.expect("bao agent renders");
    let hydrant = outputs.hydrant.expect("hydrant renders");
    // Digits become 9 and letters a; the rest stays.
    let shape = |line: &str| -> String {
        line.chars()
            .map(|c| match c {
                '0'..='9' => '9',
                c if c.is_ascii_alphabetic() => 'a',
                c => c,
            })
            .collect()
    };
    let (want, got): (Vec<&str>, Vec<&str>) =
        (bao[0].lines().collect(), hydrant[0].lines().collect());
    assert_eq!(want.len(), got.len(), "{} vs {}", bao[0], hydrant[0]);
    for (i, (w, g)) in want.iter().zip(&got).enumerate() {
        let same = match i {
            // RFC 3339 with its T and Z, and a layout's shape.
            0 => shape(w) == shape(g) && g.ends_with('Z') && g.contains('T'),
            // Hex digits.
            6 => shape(w).replace('a', "9") == shape(g).replace('a', "9"),
            // Mixed letters and digits, or any printable ASCII: length and alphabet.
            3 => g.len() == w.len() && g.chars().all(|c| c.is_ascii_alphanumeric()),
            7 => g.len() == w.len() && g.chars().all(|c| c.is_ascii_graphic() || c == ' '),
            _ => shape(w) == shape(g),
        };
        assert!(same, "line {i}: {w:?} vs {g:?}");
    }
    assert_eq!(got[6].as_bytes()[14], b'4', "a version 4 UUID: {}", got[6]);
}

/// Sprig's random integers, bytes and shuffles: in range, of the length asked, a permutation.
#[test]
fn sprig_random_ints_bytes_and_shuffles_have_bao_agent_s_shapes() {
    let (vault, token) = seeded();
    let cases = [case(
        "random",
        "{{ sprig_randInt 5 10 }}\n{{ sprig_randBytes 12 }}\n{{ sprig_shuffle \"abcdef\" }}\n{{ sprig_randInt 0 1 }}\n{{ sprig_randBytes 0 }}|",
    )];
    let outputs = both(&vault, &token, &cases);
    let bao = outputs.bao.expect("bao agent renders");
    let hydrant = outputs.hydrant.expect("hydrant renders");
    for out in [&bao[0], &hydrant[0]] {
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 5, "{out}");
        let n: i64 = lines[0].parse().expect("an integer");
        assert!((5..10).contains(&n), "{out}");
        let bytes = lines[1];
        assert!(
            bytes.len() == 16
                && bytes
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/'),
            "{out}"
        );
        let mut shuffled: Vec<char> = lines[2].chars().collect();
        shuffled.sort_unstable();
        assert_eq!(shuffled.into_iter().collect::<String>(), "abcdef", "{out}");
        assert_eq!((lines[3], lines[4]), ("0", "|"), "{out}");
    }
}

/// Go refuses a `json.Number` (Vault's numbers) where a function wants a string; so does
/// hydrant.
#[test]
fn a_vault_number_given_to_a_string_function_fails_in_both() {
    let (vault, token) = seeded();
    let cases = [case(
        "number-as-string",
        "{{ with secret \"secret/data/app/db\" }}{{ .Data.data.port | toUpper }}{{ end }}",
    )];
    let give_up = "template_config {\n  exit_on_retry_failure = true\n}\n";
    let outputs =
        crate::consul_template::both_with(&vault, &token, &cases, give_up, serde_json::json!({}));
    let bao = outputs.bao.expect_err("bao agent refuses a json.Number");
    assert!(bao.contains("json.Number"), "{bao}");
    let hydrant = outputs.hydrant.expect_err("hydrant refuses it too");
    assert!(hydrant.contains("json.Number"), "{hydrant}");
}

/// Go's types as Sprig's `typeOf`/`kindOf` and `printf "%T"` name them, for the values whose
/// Go type hydrant knows (see the README for the lists and maps it does not tell apart).
#[test]
fn sprig_types_and_printf_t_match_bao_agent() {
    let (vault, token) = seeded();
    more_secrets(&vault);
    assert_same(
        &vault,
        &token,
        &[case(
            "sprig-types",
            "{{ sprig_typeOf \"a\" }}|{{ sprig_typeOf 1 }}|{{ sprig_typeOf 1.5 }}|{{ sprig_typeOf true }}|{{ sprig_typeOf nil }}|{{ sprig_typeOf (sprig_list 1) }}|{{ sprig_typeOf (sprig_dict \"a\" 1) }}|{{ sprig_typeOf (sprig_toDate \"2006\" \"2024\") }}|{{ sprig_typeOf (parseFloat \"1e6\") }}\n\
                 {{ sprig_kindOf \"a\" }}|{{ sprig_kindOf 1 }}|{{ sprig_kindOf 1.5 }}|{{ sprig_kindOf false }}|{{ sprig_kindOf nil }}|{{ sprig_kindOf (sprig_list) }}|{{ sprig_kindOf (sprig_dict) }}|{{ sprig_kindOf (sprig_now) }}\n\
                 {{ sprig_typeIs \"string\" \"a\" }}|{{ sprig_typeIs \"int\" \"a\" }}|{{ sprig_typeIsLike \"string\" \"a\" }}|{{ sprig_kindIs \"map\" (sprig_dict) }}|{{ sprig_kindIs \"slice\" 1 }}\n\
                 {{ sprig_deepEqual (sprig_list 1 \"a\") (sprig_list 1 \"a\") }}|{{ sprig_deepEqual 1 1.0 }}|{{ sprig_deepEqual (sprig_dict \"a\" (sprig_list 1)) (sprig_dict \"a\" (sprig_list 1)) }}|{{ sprig_deepEqual \"1\" 1 }}\n\
                 {{ with secret \"secret/data/app/lists\" }}{{ sprig_typeOf .Data.data }}|{{ sprig_typeOf .Data.data.nums }}|{{ sprig_typeOf (index .Data.data.nums 0) }}|{{ sprig_kindOf (index .Data.data.nums 0) }}|{{ sprig_deepEqual (index .Data.data.nums 0) \"1\" }}{{ end }}\n\
                 {{ printf \"%T %d %5T|%-8T|%%T|%T|%v\" \"a\" 2 true 1.5 nil (sprig_list) }}|{{ printf \"%T\" }}|{{ printf \"%*d %T\" 4 1 \"x\" }}|{{ printf \"%.2f %T\" 1.5 (sprig_dict) }}\n",
        )],
    );
}

/// goutils' and xstrings' word functions, bytes and all (goutils cuts strings by bytes).
#[test]
fn sprig_word_functions_match_bao_agent() {
    let (vault, token) = seeded();
    assert_same(
        &vault,
        &token,
        &[case(
            "sprig-words",
            "{{ sprig_abbrev 5 \"hello world\" }}|{{ sprig_abbrev 3 \"hello world\" }}|{{ sprig_abbrev 20 \"short\" }}|{{ sprig_abbrevboth 5 10 \"1234 5678 9123 4567\" }}|{{ sprig_abbrevboth 0 6 \"abcdefghij\" }}|{{ sprig_abbrev 5 \"héllo wörld\" }}\n\
             {{ sprig_initials \"First Try\" }}|{{ sprig_initials \"  a  b\\tc \" }}|{{ sprig_initials \"élan vital\" }}\n\
             {{ sprig_wrap 5 \"Hello World, how are you\" }}|{{ sprig_wrapWith 5 \"\\t\" \"Hello World\" }}|{{ sprig_wrapWith 4 \"<br>\" \"abcdefghij kl\" }}|{{ sprig_wrap 3 \"a verylongword b\" }}|{{ sprig_wrap 0 \"a b\" }}\n\
             {{ sprig_swapcase \"This Is A Test\" }}|{{ sprig_swapcase \"mIxEd 123 ünï\" }}|{{ sprig_camelcase \"http_server\" }}|{{ sprig_camelcase \"_complex__case_\" }}|{{ sprig_camelcase \"some words-here\" }}|{{ sprig_camelcase \"\" }}\n\
             {{ sprig_snakecase \"HTTPServer\" }}|{{ sprig_kebabcase \"FROM CamelCase to snake/kebab-case\" }}|{{ sprig_snakecase \"Bld4Floor3rd\" }}|{{ sprig_snakecase \"混合ABCWords与123数字456\" }}|{{ sprig_kebabcase \"  sentence case  \" }}|{{ range $k, $v := sprig_dict \"dbPassword\" 1 \"API_KEY\" 2 }}{{ $k | sprig_snakecase | sprig_upper }} {{ end }}\n",
        )],
    );
}

/// Go's `net/url` as Sprig's `urlParse` and `urlJoin` use it: parts unescaped, user info and
/// paths escaped again.
#[test]
fn sprig_urls_match_bao_agent() {
    let (vault, token) = seeded();
    vault.kv2_put(
        "app/url",
        json!({"dsn": "postgres://us%40er:p%2Fss@db.example.com:5432/app%20db?sslmode=require#frag%21", "port": 5432}),
    );
    assert_same(
        &vault,
        &token,
        &[case(
            "sprig-url",
            "{{ with secret \"secret/data/app/url\" }}{{ $u := sprig_urlParse .Data.data.dsn }}{{ $u }}|{{ $u.hostname }}|{{ sprig_urlJoin $u }}|{{ sprig_urlJoin (sprig_dict \"scheme\" \"https\" \"host\" \"h\" \"path\" \"a b/c?\" \"port\" .Data.data.port) }}{{ end }}\n\
             {{ sprig_urlParse \"mailto:a@b.c\" }}|{{ sprig_urlParse \"/just/a path?q=1&r#x\" }}|{{ sprig_urlParse \"http://[::1]:8200/v1\" }}|{{ sprig_urlParse \"https://h?\" }}|{{ sprig_urlParse \"file:///etc/hosts\" }}\n\
             {{ sprig_urlJoin (sprig_dict \"scheme\" \"postgres\" \"host\" \"db:5432\" \"userinfo\" \"app:s3cr%2Ft\" \"path\" \"/db\" \"query\" \"a=1\" \"fragment\" \"f g\") }}|{{ sprig_urlJoin (sprig_dict \"path\" \"a:b\") }}|{{ sprig_urlJoin (sprig_dict \"scheme\" \"mailto\" \"opaque\" \"x@y\") }}|{{ sprig_urlJoin (sprig_dict) }}|{{ sprig_urlJoin (sprig_dict \"host\" \"h\" \"path\" \"p\") }}\n",
        )],
    );
}

/// Sprig's float arithmetic in exact decimals (shopspring/decimal), not in floats.
#[test]
fn sprig_decimal_arithmetic_matches_bao_agent() {
    let (vault, token) = seeded();
    assert_same(
        &vault,
        &token,
        &[case(
            "sprig-decimals",
            "{{ sprig_addf 0.1 0.2 }}|{{ sprig_addf 1 2 3.5 }}|{{ sprig_addf }}|{{ sprig_add1f 1.5 }}|{{ sprig_subf 0.3 0.1 }}|{{ sprig_subf 10 1 2 }}|{{ sprig_mulf 1.1 1.1 }}|{{ sprig_mulf 3 \"2.5\" }}|{{ sprig_divf 1 3 }}|{{ sprig_divf 2 3 }}|{{ sprig_divf -2 3 }}|{{ sprig_divf 10 4 2 }}\n\
             {{ sprig_addf 1e300 1e-300 }}|{{ sprig_mulf 1e200 1e200 }}|{{ sprig_divf 1 7 }}|{{ sprig_addf 123456789 0.000001 }}|{{ sprig_subf 1 }}|{{ sprig_addf \"x\" 1 }}|{{ sprig_mulf 0.000001 1000000 }}\n",
        )],
    );
}

/// Masterminds/semver's constraints and version parts, as Sprig's `semverCompare` and `semver`
/// give them.
#[test]
fn sprig_semver_matches_bao_agent() {
    let (vault, token) = seeded();
    assert_same(
        &vault,
        &token,
        &[case(
            "sprig-semver",
            "{{ sprig_semverCompare \">=1.2.0\" \"1.3.0\" }}|{{ sprig_semverCompare \"^1.2\" \"2.0.0\" }}|{{ sprig_semverCompare \"~1.2.3\" \"v1.2.9\" }}|{{ sprig_semverCompare \"1.2 - 1.4\" \"1.4.5\" }}|{{ sprig_semverCompare \"<2 || >=3.1\" \"3.0.0\" }}|{{ sprig_semverCompare \">=1.0.0\" \"1.1.0-rc.1\" }}|{{ sprig_semverCompare \">=1.0.0-0\" \"1.1.0-rc.1\" }}|{{ sprig_semverCompare \"1.2.x\" \"1.2\" }}|{{ sprig_semverCompare \"!=1.2.3, >1\" \"1.2.4\" }}|{{ sprig_semverCompare \"1.2.3\" \"1.2.3+build\" }}\n\
             {{ $v := sprig_semver \"v1.2.3-rc.1+b.5\" }}{{ $v.Major }}|{{ $v.Minor }}|{{ $v.Patch }}|{{ $v.Prerelease }}|{{ $v.Metadata }}|{{ $v.Original }}|{{ (sprig_semver \"2\").Minor }}|{{ add (sprig_semver \"1.2.3\").Patch 1 }}\n",
        )],
    );
}

/// Sprig's dates from fixed instants: formatting with Go's layouts in named zones, parsing,
/// moving, durations; the agents' local zone is the machine's (UTC here, for both).
#[test]
fn sprig_dates_from_fixed_instants_match_bao_agent() {
    let (vault, token) = seeded();
    assert_same(
        &vault,
        &token,
        &[
            case(
                "sprig-date-format",
                "{{ sprig_date \"2006-01-02T15:04:05Z07:00\" 1709211845 }}|{{ sprig_date \"Mon Jan _2 15:04:05 MST 2006\" 1709211845 }}|{{ 1709211845 | sprig_date \"Monday, 02-January-06 3:4:5 PM .000 .999 002\" }}\n\
                 {{ sprig_dateInZone \"2006-01-02 15:04:05 -0700 MST\" 1709211845 \"Asia/Tokyo\" }}|{{ sprig_date_in_zone \"15:04 MST Z07:00\" 1709211845 \"America/New_York\" }}|{{ sprig_dateInZone \"15:04 MST\" 1720000000 \"Europe/Paris\" }}|{{ sprig_dateInZone \"15:04 MST\" 1709211845 \"No/Such_Zone\" }}|{{ sprig_dateInZone \"15:04 MST\" 1709211845 \"\" }}|{{ sprig_dateInZone \"15:04 -07:00:00\" 1709211845 \"Asia/Kolkata\" }}\n\
                 {{ sprig_htmlDate 1709211845 }}|{{ sprig_htmlDateInZone 1709211845 \"Pacific/Kiritimati\" }}|{{ sprig_htmlDate 0 }}|{{ sprig_date \"2006\" -62135596800 }}\n",
            ),
            case(
                "sprig-date-parse",
                "{{ $t := sprig_toDate \"2006-01-02 15:04:05\" \"2024-02-29 13:04:05\" }}{{ $t }}|{{ $t | sprig_unixEpoch }}|{{ $t | sprig_date \"Jan 2, 2006 at 3:04pm (MST)\" }}\n\
                 {{ sprig_toDate \"2006-01-02T15:04:05Z07:00\" \"2024-02-29T13:04:05.123456+05:30\" }}|{{ sprig_toDate \"2006-01-02T15:04:05Z07:00\" \"2024-02-29T13:04:05Z\" }}|{{ sprig_toDate \"2006-01-02 MST\" \"2024-02-29 CET\" }}|{{ sprig_toDate \"2006-01-02 MST\" \"2024-02-29 UTC\" }}\n\
                 {{ sprig_toDate \"2006-01-02\" \"not a date\" }}|{{ sprig_toDate \"2006-01-02\" \"2023-02-29\" }}|{{ sprig_toDate \"15:04\" \"10:30\" }}|{{ sprig_toDate \"Jan _2 2006 3:04:05.000PM\" \"feb  9 2024 1:02:03.450PM\" }}|{{ sprig_toDate \"2006-01-02 15:04:05\" \"2024-01-02 03:04:05.5\" }}\n\
                 {{ sprig_mustToDate \"02/01/06\" \"29/02/24\" }}|{{ sprig_toDate \"2006-002\" \"2024-060\" }}|{{ sprig_toJson (sprig_toDate \"2006-01-02T15:04:05.999Z07:00\" \"2024-02-29T13:04:05.5-08:00\") }}\n",
            ),
            case(
                "sprig-date-modify",
                "{{ $t := sprig_toDate \"2006-01-02\" \"2024-02-28\" }}{{ sprig_dateModify \"24h\" $t }}|{{ $t | sprig_dateModify \"-1.5h\" }}|{{ sprig_date_modify \"90m30s\" $t | sprig_date \"2006-01-02 15:04:05\" }}|{{ sprig_dateModify \"bad\" $t }}|{{ sprig_mustDateModify \"1h\" $t }}|{{ sprig_must_date_modify \"300ms\" $t }}\n",
            ),
            case(
                "sprig-durations",
                "{{ sprig_duration \"90\" }}|{{ sprig_duration \"3600\" }}|{{ sprig_duration \"-5\" }}|{{ sprig_duration \"x\" }}|{{ sprig_duration 90 }}|{{ sprig_duration \"100000\" }}\n\
                 {{ sprig_durationRound \"2h30m\" }}|{{ sprig_durationRound \"-90s\" }}|{{ sprig_durationRound \"1s\" }}|{{ sprig_durationRound \"800h\" }}|{{ sprig_durationRound \"9000h\" }}|{{ sprig_durationRound \"x\" }}|{{ sprig_durationRound 5 }}|{{ sprig_durationRound (sprig_toDate \"2006\" \"2001\") }}\n\
                 {{ sprig_ago \"x\" }}|{{ sprig_ago 1.5 }}\n",
            ),
        ],
    );
}

/// `now` differs on every run: both agents print a local `time.Time` as Go does, with its
/// monotonic reading, and what is computed from it comes out alike.
#[test]
fn sprig_now_has_bao_agent_s_shape() {
    let (vault, token) = seeded();
    let cases = [case(
        "now",
        "{{ sprig_now }}\n{{ sprig_now | sprig_date \"2006-01-02T15\" }}\n{{ sprig_now | sprig_unixEpoch }}\n{{ sprig_ago (sprig_now) }}\n{{ sprig_now | sprig_dateModify \"-2h\" | sprig_durationRound }}\n{{ sprig_htmlDate \"x\" }}",
    )];
    let outputs = both(&vault, &token, &cases);
    let bao = outputs.bao.expect("bao agent renders");
    let hydrant = outputs.hydrant.expect("hydrant renders");
    let (want, got): (Vec<&str>, Vec<&str>) =
        (bao[0].lines().collect(), hydrant[0].lines().collect());
    assert_eq!(want.len(), got.len(), "{} vs {}", bao[0], hydrant[0]);
    // `2026-12-07 09:12:41.123456789 +0000 UTC m=+0.012345678`: the same words, the date and
    // zone alike, the time within seconds; Go drops a fraction's trailing zeros.
    let (w, g): (Vec<&str>, Vec<&str>) =
        (want[0].split(' ').collect(), got[0].split(' ').collect());
    assert_eq!(w.len(), g.len(), "{} vs {}", want[0], got[0]);
    assert_eq!(
        (w[0], w[2], w[3]),
        (g[0], g[2], g[3]),
        "{} vs {}",
        want[0],
        got[0]
    );
    assert!(
        g[1].len() >= 8 && g[1].len() <= 18 && g[4].starts_with("m=+"),
        "{}",
        got[0]
    );
    let seconds = |line: &str| line.parse::<i64>().expect("seconds");
    assert!(
        (seconds(want[2]) - seconds(got[2])).abs() < 30,
        "{want:?} vs {got:?}"
    );
    for i in [1, 3, 4, 5] {
        assert_eq!(want[i], got[i], "line {i}");
    }
}

/// Sprig's Master Password derivation is deterministic: both agents must give the same bytes,
/// for every password type, counters and inputs outside ASCII; and Sprig's texts for an unknown
/// type, a bcrypt password past 72 bytes and a user name holding `:`.
#[test]
fn sprig_derive_password_and_crypto_texts_match_bao_agent() {
    let (vault, token) = seeded();
    assert_same(
        &vault,
        &token,
        &[case(
            "sprig-derive",
            "{{ sprig_derivePassword 1 \"long\" \"password\" \"user\" \"example.com\" }}|{{ sprig_derivePassword 7 \"maximum\" \"pässwörd\" \"üser\" \"site\" }}|{{ sprig_derivePassword 0 \"medium\" \"\" \"\" \"\" }}\n\
             {{ sprig_derivePassword 2 \"short\" \"p\" \"u\" \"s\" }}|{{ sprig_derivePassword 3 \"basic\" \"p\" \"u\" \"s\" }}|{{ sprig_derivePassword 4294967295 \"pin\" \"p\" \"u\" \"s\" }}|{{ sprig_derivePassword 1 \"nope\" \"p\" \"u\" \"s\" }}\n\
             {{ with secret \"secret/data/app/db\" }}{{ sprig_derivePassword 1 \"long\" .Data.data.password .Data.data.username \"db\" }}{{ end }}\n\
             {{ sprig_bcrypt (sprig_repeat 73 \"x\") }}|{{ sprig_htpasswd \"a:b\" \"pw\" }}|{{ sprig_encryptAES \"key\" \"\" }}|{{ sprig_decryptAES \"key\" \"\" }}\n",
        )],
    );
}

/// bcrypt salts every hash: both agents' hashes are `$2a$10$` hashes of the same length that
/// verify against the password, alone and in `htpasswd`'s `user:hash`.
#[test]
fn sprig_bcrypt_and_htpasswd_have_bao_agent_s_shape_and_verify() {
    let (vault, token) = seeded();
    let cases = [case(
        "bcrypt",
        "{{ sprig_bcrypt \"s3cr3t\" }}\n{{ sprig_htpasswd \"alice\" \"s3cr3t\" }}\n{{ with secret \"secret/data/app/db\" }}{{ sprig_htpasswd .Data.data.username .Data.data.password }}{{ end }}\n",
    )];
    let outputs = both(&vault, &token, &cases);
    let bao = outputs.bao.expect("bao agent renders");
    let hydrant = outputs.hydrant.expect("hydrant renders");
    for out in [&bao[0], &hydrant[0]] {
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        let checks = [
            ("", lines[0], "s3cr3t"),
            ("alice:", lines[1], "s3cr3t"),
            ("app-user:", lines[2], "s3cr3t-Pa55w0rd"),
        ];
        for (prefix, line, password) in checks {
            let hash = line.strip_prefix(prefix).expect(prefix);
            assert!(hash.starts_with("$2a$10$") && hash.len() == 60, "{out}");
            assert!(
                bcrypt::verify(password, hash).expect("a bcrypt hash"),
                "{out}"
            );
        }
    }
    let shape = |out: &str| out.lines().map(str::len).collect::<Vec<_>>();
    assert_eq!(shape(&bao[0]), shape(&hydrant[0]));
}

/// Sprig's AES has a random IV: each agent decrypts what the other encrypted, so the key
/// derivation, padding and IV layout must be Sprig's.
#[test]
fn sprig_aes_of_each_agent_decrypts_in_the_other() {
    let (vault, token) = seeded();
    let plain = [
        "a",
        "exactly sixteen!",
        "línea uno\nline two, longer than a block\n",
    ];
    let encrypt: String = plain
        .iter()
        .map(|p| format!("{{{{ sprig_encryptAES \"k3y\" {p:?} }}}}\n"))
        .chain(std::iter::once(
            "{{ with secret \"secret/data/app/db\" }}{{ sprig_encryptAES .Data.data.password .Data.data.username }}{{ end }}\n".to_owned(),
        ))
        .collect();
    let outputs = both(&vault, &token, &[case("encrypt", &encrypt)]);
    let bao = outputs.bao.expect("bao agent encrypts");
    let hydrant = outputs.hydrant.expect("hydrant encrypts");
    let mut decrypt = String::new();
    for ciphertexts in [&bao[0], &hydrant[0]] {
        let lines: Vec<&str> = ciphertexts.lines().collect();
        assert_eq!(lines.len(), 4, "{ciphertexts}");
        for line in &lines[..3] {
            decrypt.push_str(&format!(
                "{{{{ sprig_decryptAES \"k3y\" {line:?} | printf \"%q\" }}}}|"
            ));
        }
        decrypt.push_str(&format!(
            "{{{{ with secret \"secret/data/app/db\" }}}}{{{{ sprig_decryptAES .Data.data.password {:?} }}}}{{{{ end }}}}\n",
            lines[3]
        ));
    }
    let out = assert_same(&vault, &token, &[case("decrypt", &decrypt)]);
    let quoted: Vec<String> = plain.iter().map(|p| format!("{p:?}")).collect();
    let want = format!("{}|app-user\n", quoted.join("|"));
    assert_eq!(out[0], want.repeat(2));
}

/// What a test compares of a certificate that differs on every run: everything but its key,
/// serial, signature and times, with its lifetime and its start kept apart.
#[derive(Debug, PartialEq)]
struct CertShape {
    subject: String,
    issuer: String,
    dns: Vec<String>,
    ips: Vec<String>,
    ca: Option<bool>,
    key_usage: String,
    ext_key_usage: String,
    /// Each extension's OID and criticality, sorted (Go and rcgen write them in other orders).
    extensions: Vec<(String, bool)>,
    /// The subject and authority key identifiers' lengths.
    key_ids: (Option<usize>, Option<usize>),
    signature: String,
    key: KeyShape,
    lifetime: i64,
}

/// A key's algorithm and size.
#[derive(Debug, PartialEq)]
struct KeyShape {
    algorithm: String,
    bits: usize,
}

fn cert_shape(der: &[u8]) -> (CertShape, i64) {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(der).expect("a certificate");
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    let (mut ski, mut aki) = (None, None);
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => {
                for name in &san.general_names {
                    match name {
                        GeneralName::DNSName(d) => dns.push((*d).to_owned()),
                        GeneralName::IPAddress(ip) => ips.push(format!("{ip:?}")),
                        other => panic!("unexpected SAN {other:?}"),
                    }
                }
            }
            ParsedExtension::SubjectKeyIdentifier(id) => ski = Some(id.0.len()),
            ParsedExtension::AuthorityKeyIdentifier(id) => {
                aki = id.key_identifier.as_ref().map(|k| k.0.len());
            }
            _ => {}
        }
    }
    let mut extensions: Vec<(String, bool)> = cert
        .extensions()
        .iter()
        .map(|e| (e.oid.to_id_string(), e.critical))
        .collect();
    extensions.sort();
    let spki = cert.public_key();
    let key = match spki.parsed().expect("a public key") {
        x509_parser::public_key::PublicKey::RSA(rsa) => KeyShape {
            algorithm: "rsa".into(),
            bits: rsa.key_size(),
        },
        x509_parser::public_key::PublicKey::EC(point) => KeyShape {
            algorithm: format!(
                "ec {}",
                spki.algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.as_oid().ok())
                    .map(|o| o.to_id_string())
                    .unwrap_or_default()
            ),
            bits: point.key_size(),
        },
        _ => KeyShape {
            algorithm: spki.algorithm.algorithm.to_id_string(),
            bits: spki.subject_public_key.data.len() * 8,
        },
    };
    let validity = cert.validity();
    let shape = CertShape {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        dns,
        ips,
        ca: cert.basic_constraints().expect("one").map(|b| b.value.ca),
        key_usage: cert
            .key_usage()
            .expect("one")
            .map(|k| k.value.to_string())
            .unwrap_or_default(),
        ext_key_usage: cert
            .extended_key_usage()
            .expect("one")
            .map(|k| format!("{:?}", k.value))
            .unwrap_or_default(),
        extensions,
        key_ids: (ski, aki),
        signature: cert.signature_algorithm.algorithm.to_id_string(),
        key,
        lifetime: validity.not_after.timestamp() - validity.not_before.timestamp(),
    };
    (shape, validity.not_before.timestamp())
}

/// A private key's algorithm and size, from its PEM block.
fn key_shape(block: &pem::Pem) -> KeyShape {
    use rsa::pkcs1::DecodeRsaPrivateKey as _;
    use rsa::traits::PublicKeyParts as _;
    match block.tag() {
        "RSA PRIVATE KEY" => {
            let key = rsa::PrivateKey::from_pkcs1_der(block.contents()).expect("PKCS#1");
            KeyShape {
                algorithm: "rsa".into(),
                bits: key.size() * 8,
            }
        }
        "EC PRIVATE KEY" => {
            p256::SecretKey::from_sec1_der(block.contents()).expect("a P-256 SEC1 key");
            KeyShape {
                algorithm: "ec P-256".into(),
                bits: 256,
            }
        }
        "PRIVATE KEY" => {
            let info = rsa::pkcs8::PrivateKeyInfoRef::try_from(block.contents()).expect("PKCS#8");
            KeyShape {
                algorithm: info.algorithm.oid.to_string(),
                bits: 0,
            }
        }
        other => panic!("unexpected block {other}"),
    }
}

/// Whether `cert` is signed by `ca`'s key and names it as its issuer.
fn signed_by(cert: &[u8], ca: &[u8]) -> bool {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(cert).expect("a certificate");
    let (_, ca) = X509Certificate::from_der(ca).expect("a CA");
    let algorithm: &dyn ring::signature::VerificationAlgorithm =
        match cert.signature_algorithm.algorithm.to_id_string().as_str() {
            "1.2.840.113549.1.1.11" => &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            "1.2.840.10045.4.3.2" => &ring::signature::ECDSA_P256_SHA256_ASN1,
            "1.3.101.112" => &ring::signature::ED25519,
            other => panic!("unexpected signature algorithm {other}"),
        };
    let key = ring::signature::UnparsedPublicKey::new(
        algorithm,
        ca.public_key().subject_public_key.data.as_ref(),
    );
    cert.issuer().as_raw() == ca.subject().as_raw()
        && key
            .verify(
                cert.tbs_certificate.as_ref(),
                cert.signature_value.data.as_ref(),
            )
            .is_ok()
}

/// Sprig's keys and certificates differ on every run: both agents' PEM blocks must be of the
/// same types, the keys of the same algorithms and sizes, the certificates alike in all but
/// their keys, serials and times (which start within a minute of each other), and a signed
/// certificate must verify against its CA.
#[test]
fn sprig_keys_and_certificates_have_bao_agent_s_shape() {
    let (vault, token) = seeded();
    let cases = [
        case(
            "keys",
            "{{ sprig_genPrivateKey \"rsa\" }}{{ sprig_genPrivateKey \"ecdsa\" }}{{ sprig_genPrivateKey \"ed25519\" }}{{ sprig_genPrivateKey \"nope\" }}\n",
        ),
        case(
            "rsa-ca",
            "{{ $ca := sprig_genCA \"my-ca\" 30 }}{{ $ca.Cert }}{{ $ca.Key }}\
             {{ $leaf := sprig_genSignedCert \"svc.example.com\" (sprig_list \"10.0.0.1\" \"::1\" \"::ffff:1.2.3.4\") (sprig_list \"svc.example.com\" \"svc\") 10 $ca }}{{ $leaf.Cert }}{{ $leaf.Key }}\
             {{ $self := sprig_genSelfSignedCert \"self\" nil (sprig_list \"localhost\") 5 }}{{ $self.Cert }}{{ $self.Key }}\
             {{ $custom := sprig_buildCustomCert ($ca.Cert | sprig_b64enc) ($ca.Key | sprig_b64enc) }}{{ $again := sprig_genSignedCert \"again\" nil nil 1 $custom }}{{ $again.Cert }}",
        ),
        case(
            "with-keys",
            "{{ $ca := sprig_genCAWithKey \"ec-ca\" 3 (sprig_genPrivateKey \"ecdsa\") }}{{ $ca.Cert }}{{ $ca.Key }}\
             {{ $leaf := sprig_genSignedCertWithKey \"ed-leaf\" (sprig_list \"192.168.1.1\") nil 2 $ca (sprig_genPrivateKey \"ed25519\") }}{{ $leaf.Cert }}{{ $leaf.Key }}\
             {{ $self := sprig_genSelfSignedCertWithKey \"\" nil (sprig_list \"only.san\") 1 (sprig_genPrivateKey \"ecdsa\") }}{{ $self.Cert }}{{ $self.Key }}\
             {{ $ed := sprig_genCAWithKey \"ed-ca\" 7 (sprig_genPrivateKey \"ed25519\") }}{{ $ed.Cert }}{{ $ed.Key }}\
             {{ $rsa := sprig_genSelfSignedCertWithKey \"rsa-key\" nil nil 1 $ca.Key }}{{ $rsa.Cert }}",
        ),
    ];
    let outputs = both(&vault, &token, &cases);
    let bao = outputs.bao.expect("bao agent renders");
    let hydrant = outputs.hydrant.expect("hydrant renders");
    for ((case, want), got) in cases.iter().zip(&bao).zip(&hydrant) {
        let (want_blocks, got_blocks) = (
            pem::parse_many(want).expect("PEM"),
            pem::parse_many(got).expect("PEM"),
        );
        let tags = |blocks: &[pem::Pem]| {
            blocks
                .iter()
                .map(|b| b.tag().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            tags(&got_blocks),
            tags(&want_blocks),
            "{}: {got}",
            case.name
        );
        // What follows the last block (Sprig's text for an unknown key type) is the same.
        let tail = |s: &str| s.rsplit("-----").next().unwrap_or_default().to_owned();
        assert_eq!(tail(got), tail(want), "{}", case.name);
        for (w, g) in want_blocks.iter().zip(&got_blocks) {
            if w.tag() == "CERTIFICATE" {
                let ((want_shape, want_start), (got_shape, got_start)) =
                    (cert_shape(w.contents()), cert_shape(g.contents()));
                assert_eq!(got_shape, want_shape, "{}", case.name);
                assert!((want_start - got_start).abs() < 60, "{}", case.name);
            } else {
                assert_eq!(key_shape(g), key_shape(w), "{}", case.name);
            }
        }
    }
    // Signed certificates verify against their CAs, in both agents.
    for out in [&bao, &hydrant] {
        let certs = |i: usize| -> Vec<Vec<u8>> {
            pem::parse_many(&out[i])
                .expect("PEM")
                .into_iter()
                .filter(|b| b.tag() == "CERTIFICATE")
                .map(pem::Pem::into_contents)
                .collect()
        };
        let (rsa, with_keys) = (certs(1), certs(2));
        assert!(
            signed_by(&rsa[1], &rsa[0]),
            "the leaf is signed by genCA's CA"
        );
        assert!(signed_by(&rsa[3], &rsa[0]), "buildCustomCert's CA signs");
        assert!(
            signed_by(&with_keys[1], &with_keys[0]),
            "the ECDSA CA signs"
        );
        assert!(signed_by(&rsa[2], &rsa[2]), "self-signed");
    }
}

/// `getHostByName` resolves through the system: "localhost" is a loopback address in both
/// agents (which of 127.0.0.1 and ::1 is drawn at random).
#[test]
fn sprig_get_host_by_name_resolves_localhost_in_both() {
    let (vault, token) = seeded();
    let cases = [case("host", "{{ sprig_getHostByName \"localhost\" }}\n")];
    let outputs = both(&vault, &token, &cases);
    let bao = outputs.bao.expect("bao agent resolves");
    let hydrant = outputs.hydrant.expect("hydrant resolves");
    for out in [&bao[0], &hydrant[0]] {
        assert!(["127.0.0.1\n", "::1\n"].contains(&out.as_str()), "{out:?}");
    }
}

/// A name that does not resolve fails the render in both agents (Go panics on it); hydrant's
/// error names the host.
#[test]
fn sprig_get_host_by_name_of_an_unknown_host_fails_in_both() {
    let (vault, token) = seeded();
    let cases = [case(
        "no-host",
        "{{ sprig_getHostByName \"no-such-host.invalid\" }}\n",
    )];
    let give_up = "template_config {\n  exit_on_retry_failure = true\n}\n";
    let outputs =
        crate::consul_template::both_with(&vault, &token, &cases, give_up, serde_json::json!({}));
    outputs.bao.expect_err("bao agent fails");
    let hydrant = outputs.hydrant.expect_err("hydrant fails");
    assert!(hydrant.contains("no-such-host.invalid"), "{hydrant}");
}
