//! The word lists and weighted tables the local NLP reads, kept as data
//! files under `src/nlp/data/` (compiled in with `include_str!`, parsed on
//! first use) so they can be read and edited as lists rather than as Rust.
//!
//! Format: one entry per line; blank lines and lines starting with `#` are
//! ignored. Weighted tables (`.tsv`) put a tab between the entry and its
//! weight. A line that does not parse is skipped at run time (these files
//! never reach a request as an error); the unit tests below check that every
//! line of every file parses, so a typo fails `make test`.

/// A plain list, parsed on first use: `static X: WordList = WordList::new(|| words(include_str!(…)));`.
pub(crate) type WordList = std::sync::LazyLock<Vec<&'static str>>;
/// A weighted table, parsed on first use.
pub(crate) type WeightedList = std::sync::LazyLock<Vec<(&'static str, f64)>>;
/// A table of weighted multi-word phrases, parsed on first use.
pub(crate) type PhraseList = std::sync::LazyLock<Vec<(Vec<&'static str>, f64)>>;
/// A table of string pairs, parsed on first use.
pub(crate) type PairList = std::sync::LazyLock<Vec<(&'static str, &'static str)>>;

/// The entries of a plain list.
pub(crate) fn words(text: &'static str) -> Vec<&'static str> {
    entries(text).collect()
}

/// `entry<TAB>weight` lines.
pub(crate) fn weighted(text: &'static str) -> Vec<(&'static str, f64)> {
    entries(text).filter_map(parse_weighted).collect()
}

/// `word word …<TAB>weight` lines: multi-word phrases split on spaces.
pub(crate) fn phrases(text: &'static str) -> Vec<(Vec<&'static str>, f64)> {
    weighted(text)
        .into_iter()
        .map(|(phrase, w)| (phrase.split(' ').collect(), w))
        .collect()
}

/// `left<TAB>right` lines.
pub(crate) fn pairs(text: &'static str) -> Vec<(&'static str, &'static str)> {
    entries(text)
        .filter_map(|line| line.split_once('\t'))
        .collect()
}

fn entries(text: &'static str) -> impl Iterator<Item = &'static str> {
    text.lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

fn parse_weighted(line: &str) -> Option<(&str, f64)> {
    let (entry, weight) = line.split_once('\t')?;
    let weight: f64 = weight.trim().parse().ok()?;
    weight.is_finite().then_some((entry, weight))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_of_every_file_parses_and_nothing_is_listed_twice() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/nlp/data");
        // Read from disk, so a new file is checked without being listed here.
        let mut all: Vec<(String, String)> = Vec::new();
        for entry in std::fs::read_dir(dir).expect("data dir") {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("")
                .to_string();
            all.push((name, std::fs::read_to_string(&path).expect("readable")));
        }
        assert!(all.len() >= 39, "{} files", all.len());
        for (name, text) in &all {
            let lines: Vec<&str> = text
                .lines()
                .map(str::trim_end)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .collect();
            assert!(!lines.is_empty(), "{name} is empty");
            let mut keys = Vec::new();
            for line in &lines {
                if name == "questions_irregular_past.tsv" {
                    let (past, base) = line
                        .split_once('\t')
                        .unwrap_or_else(|| panic!("{name}: {line:?}"));
                    assert!(!past.is_empty() && !base.is_empty(), "{name}: {line:?}");
                    keys.push(past.to_string());
                } else if name.ends_with(".tsv") {
                    let (entry, w) =
                        parse_weighted(line).unwrap_or_else(|| panic!("{name}: {line:?}"));
                    assert!((-5.0..=5.0).contains(&w), "{name}: weight {w} of {entry:?}");
                    keys.push(entry.to_string());
                } else {
                    assert!(
                        !line.contains('\t'),
                        "{name}: a tab in a plain list: {line:?}"
                    );
                    keys.push(line.to_string());
                }
            }
            let mut sorted = keys.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), keys.len(), "{name} lists an entry twice");
        }
    }

    #[test]
    fn readers_skip_comments_and_bad_lines() {
        let text = "# a comment\n\nfine\t1.5\nno weight\nnan\tNaN\nworse\t-2\n";
        assert_eq!(weighted(text), vec![("fine", 1.5), ("worse", -2.0)]);
        assert_eq!(words("# c\none\n\ntwo\n"), vec!["one", "two"]);
        assert_eq!(phrases("rip off\t-2.3\n"), vec![(vec!["rip", "off"], -2.3)]);
        assert_eq!(pairs("ate\teat\nbroken\n"), vec![("ate", "eat")]);
    }
}
