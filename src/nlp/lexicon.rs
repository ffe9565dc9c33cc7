//! The sentiment lexicon: a few hundred common English opinion words with
//! VADER-style valences (about -4..=4), the modifier word lists (negators,
//! intensifiers, diminishers, contrast words), multi-word idioms and emoji.
//!
//! Invariants: lookups take lowercased words with `'` apostrophes (see
//! `text::normalize_word`); every table is static, so results are
//! deterministic. Words that are usually neutral in factual prose ("like",
//! "well", "right", "work") are deliberately left out.

use std::collections::HashMap;
use std::sync::OnceLock;

use super::text::stem;

/// Opinion words and their valence.
const WORDS: &[(&str, f64)] = &[
    // Positive.
    ("adequate", 0.9),
    ("admire", 2.1),
    ("adorable", 2.2),
    ("adore", 2.9),
    ("adored", 2.6),
    ("affordable", 1.4),
    ("amazed", 2.2),
    ("amazing", 2.8),
    ("amazingly", 2.6),
    ("appreciate", 1.7),
    ("appreciated", 2.3),
    ("attentive", 1.7),
    ("awesome", 3.1),
    ("beautiful", 2.9),
    ("beautifully", 2.7),
    ("beneficial", 1.9),
    ("benefit", 1.6),
    ("best", 3.2),
    ("better", 1.9),
    ("bargain", 0.8),
    ("bliss", 2.7),
    ("brilliant", 2.8),
    ("calm", 1.3),
    ("charming", 2.8),
    ("cheerful", 2.5),
    ("clean", 1.7),
    ("clever", 1.9),
    ("comfortable", 1.5),
    ("comfy", 1.8),
    ("convenient", 1.6),
    ("cool", 1.3),
    ("courteous", 2.3),
    ("cozy", 1.9),
    ("cosy", 1.9),
    ("decent", 1.2),
    ("delicious", 2.7),
    ("delight", 2.9),
    ("delighted", 2.9),
    ("delightful", 2.9),
    ("dependable", 1.8),
    ("durable", 1.3),
    ("easy", 1.9),
    ("effective", 2.1),
    ("efficient", 1.6),
    ("elegant", 2.1),
    ("enjoy", 2.2),
    ("enjoyable", 1.9),
    ("enjoyed", 2.3),
    ("enthusiastic", 2.3),
    ("excellent", 3.2),
    ("exceptional", 2.6),
    ("excited", 1.7),
    ("exciting", 2.2),
    ("fabulous", 2.4),
    ("fair", 1.3),
    ("fantastic", 2.6),
    ("fast", 1.0),
    ("favorite", 2.0),
    ("favourite", 2.0),
    ("fine", 0.8),
    ("flawless", 2.3),
    ("powerful", 1.3),
    ("fortunate", 1.9),
    ("fresh", 1.3),
    ("friendly", 2.2),
    ("fun", 2.3),
    ("generous", 2.3),
    ("gem", 1.8),
    ("glad", 2.0),
    ("good", 1.9),
    ("gorgeous", 3.0),
    ("grateful", 2.0),
    ("great", 3.1),
    ("happily", 2.1),
    ("happy", 2.7),
    ("helpful", 1.9),
    ("honest", 2.3),
    ("hope", 1.9),
    ("hopeful", 2.3),
    ("ideal", 2.4),
    ("impressed", 2.1),
    ("impressive", 2.3),
    ("improve", 1.9),
    ("improved", 2.1),
    ("improvement", 2.0),
    ("incredible", 2.6),
    ("inspiring", 2.4),
    ("interesting", 1.7),
    ("intuitive", 1.5),
    ("joy", 2.8),
    ("joyful", 2.9),
    ("kind", 2.0),
    ("love", 3.2),
    ("loved", 2.9),
    ("lovely", 2.8),
    ("loves", 2.7),
    ("loving", 2.9),
    ("lucky", 1.8),
    ("luckily", 1.5),
    ("magnificent", 2.9),
    ("marvelous", 2.9),
    ("masterpiece", 3.1),
    ("neat", 1.5),
    ("nice", 1.8),
    ("nicely", 1.9),
    ("ok", 0.9),
    ("okay", 0.9),
    ("optimistic", 2.1),
    ("outstanding", 3.0),
    ("peaceful", 2.2),
    ("perfect", 2.7),
    ("perfectly", 2.5),
    ("pleasant", 2.3),
    ("pleased", 1.9),
    ("pleasure", 2.7),
    ("polite", 1.9),
    ("positive", 2.3),
    ("praise", 2.6),
    ("praised", 2.2),
    ("pretty", 2.2),
    ("professional", 1.1),
    ("proud", 2.1),
    ("quick", 1.0),
    ("quiet", 0.8),
    ("recommend", 1.5),
    ("recommended", 1.5),
    ("refreshing", 1.8),
    ("relaxing", 2.2),
    ("reliable", 1.8),
    ("remarkable", 2.2),
    ("resolved", 1.2),
    ("responsive", 1.5),
    ("safe", 1.9),
    ("satisfied", 1.8),
    ("satisfying", 2.0),
    ("seamless", 1.8),
    ("smart", 1.7),
    ("smooth", 1.2),
    ("solid", 1.4),
    ("solved", 1.3),
    ("spacious", 1.6),
    ("spectacular", 2.8),
    ("splendid", 2.8),
    ("spotless", 2.0),
    ("stunning", 2.6),
    ("sturdy", 1.2),
    ("success", 2.7),
    ("successful", 2.8),
    ("superb", 3.1),
    ("superior", 2.5),
    ("supportive", 1.8),
    ("sweet", 2.0),
    ("tasty", 2.1),
    ("terrific", 2.6),
    ("thank", 1.5),
    ("thankful", 2.2),
    ("thanks", 1.9),
    ("thrilled", 2.7),
    ("top-notch", 2.5),
    ("trust", 2.3),
    ("trusted", 2.1),
    ("useful", 1.9),
    ("valuable", 2.1),
    ("welcome", 2.0),
    ("welcoming", 1.9),
    ("win", 2.8),
    ("winner", 2.8),
    ("winning", 2.4),
    ("wonderful", 2.7),
    ("wonderfully", 2.9),
    ("worth", 0.9),
    ("worthwhile", 1.5),
    ("wow", 2.3),
    ("yay", 2.4),
    // Negative.
    ("abysmal", -2.8),
    ("afraid", -2.0),
    ("angry", -2.3),
    ("annoyed", -1.6),
    ("annoying", -1.7),
    ("appalling", -2.6),
    ("arrogant", -2.2),
    ("atrocious", -3.0),
    ("avoid", -1.2),
    ("awful", -2.6),
    ("awkward", -1.2),
    ("bad", -2.5),
    ("badly", -2.1),
    ("bland", -1.1),
    ("boring", -1.3),
    ("bored", -1.1),
    ("broke", -1.5),
    ("broken", -2.1),
    ("buggy", -1.6),
    ("careless", -1.5),
    ("catastrophe", -3.0),
    ("cheated", -2.6),
    ("clumsy", -1.4),
    ("complain", -1.9),
    ("complained", -1.7),
    ("complaint", -1.5),
    ("complaints", -1.5),
    ("confused", -1.5),
    ("confusing", -1.3),
    ("cramped", -1.3),
    ("crap", -1.6),
    ("crash", -1.7),
    ("crashed", -1.7),
    ("crashes", -1.7),
    ("crisis", -3.1),
    ("cruel", -2.8),
    ("damaged", -1.9),
    ("dangerous", -2.1),
    ("dead", -3.3),
    ("death", -2.9),
    ("defective", -2.1),
    ("delay", -1.0),
    ("delayed", -1.0),
    ("depressing", -2.2),
    ("difficult", -1.5),
    ("dirty", -1.9),
    ("disappointed", -1.9),
    ("disappointing", -2.2),
    ("disappointment", -2.3),
    ("disaster", -3.1),
    ("disastrous", -3.0),
    ("disgusting", -2.4),
    ("dislike", -1.6),
    ("disliked", -1.7),
    ("dissatisfied", -2.0),
    ("dreadful", -2.5),
    ("dull", -1.7),
    ("embarrassing", -1.9),
    ("error", -1.0),
    ("errors", -1.0),
    ("expensive", -0.9),
    ("fail", -2.5),
    ("failed", -2.3),
    ("fails", -2.0),
    ("failure", -2.3),
    ("fake", -2.1),
    ("faulty", -1.9),
    ("filthy", -2.6),
    ("flimsy", -1.5),
    ("fraud", -2.8),
    ("frustrated", -1.9),
    ("frustrating", -1.9),
    ("frustration", -2.1),
    ("garbage", -1.6),
    ("greedy", -1.7),
    ("gross", -2.1),
    ("hassle", -1.5),
    ("hate", -2.7),
    ("hated", -3.2),
    ("hates", -1.9),
    ("hideous", -2.7),
    ("horrible", -2.7),
    ("horribly", -2.4),
    ("horrid", -2.5),
    ("hostile", -2.2),
    ("hurt", -2.4),
    ("inaccurate", -1.3),
    ("incompetent", -2.1),
    ("inconvenient", -1.3),
    ("incorrect", -1.3),
    ("inferior", -1.7),
    ("injured", -1.7),
    ("insulting", -2.2),
    ("junk", -1.8),
    ("killed", -3.5),
    ("lacking", -1.0),
    ("lame", -1.8),
    ("lazy", -1.5),
    ("leaking", -1.2),
    ("lost", -1.1),
    ("lousy", -2.5),
    ("mediocre", -1.5),
    ("mess", -1.8),
    ("messy", -1.6),
    ("miserable", -2.5),
    ("mistake", -1.4),
    ("mistakes", -1.4),
    ("nasty", -2.6),
    ("negative", -2.7),
    ("nightmare", -2.6),
    ("noisy", -1.3),
    ("outrageous", -2.0),
    ("overheat", -1.5),
    ("overheated", -1.5),
    ("overheating", -1.5),
    ("overheats", -1.5),
    ("overpriced", -1.9),
    ("pain", -2.3),
    ("painful", -1.9),
    ("pathetic", -2.2),
    ("poor", -2.1),
    ("poorly", -1.8),
    ("problem", -1.7),
    ("problems", -1.7),
    ("regret", -1.8),
    ("ridiculous", -1.8),
    ("risky", -1.4),
    ("rude", -2.0),
    ("sad", -2.1),
    ("sadly", -1.8),
    ("scam", -2.4),
    ("scary", -2.2),
    ("shame", -2.1),
    ("shameful", -2.3),
    ("sick", -2.3),
    ("slow", -1.2),
    ("smelly", -1.9),
    ("soggy", -1.2),
    ("stale", -1.3),
    ("stinks", -2.0),
    ("stupid", -2.4),
    ("suck", -1.5),
    ("sucks", -1.5),
    ("tasteless", -1.7),
    ("terrible", -2.8),
    ("terribly", -2.0),
    ("tragedy", -3.4),
    ("tragic", -3.4),
    ("ugly", -2.3),
    ("uncomfortable", -1.6),
    ("unfortunately", -1.6),
    ("unfriendly", -1.9),
    ("unhappy", -1.8),
    ("unhelpful", -1.8),
    ("unprofessional", -2.0),
    ("unreliable", -1.9),
    ("unsafe", -1.9),
    ("upset", -1.6),
    ("useless", -1.8),
    ("war", -2.9),
    ("waste", -1.8),
    ("wasted", -2.2),
    ("weak", -1.9),
    ("worried", -1.2),
    ("worry", -1.9),
    ("worse", -2.1),
    ("worst", -3.1),
    ("worthless", -1.9),
    ("wrong", -2.1),
];

/// Multi-word expressions whose meaning is not the sum of their words.
/// Matched on consecutive tokens before single words.
pub(crate) const IDIOMS: &[(&[&str], f64)] = &[
    (&["waste", "of", "time"], -2.5),
    (&["waste", "of", "money"], -2.5),
    (&["rip", "off"], -2.3),
    (&["ripoff"], -2.3),
    (&["can't", "wait"], 2.0),
    (&["cannot", "wait"], 2.0),
    (&["cant", "wait"], 2.0),
    (&["never", "again"], -2.0),
    (&["never", "come", "back"], -2.2),
    (&["never", "coming", "back"], -2.2),
    (&["never", "go", "back"], -2.0),
    (&["never", "return"], -2.0),
    (&["won't", "be", "back"], -2.0),
    (&["not", "coming", "back"], -2.0),
    (&["doesn't", "work"], -2.0),
    (&["does", "not", "work"], -2.0),
    (&["didn't", "work"], -2.0),
    (&["did", "not", "work"], -2.0),
    (&["don't", "work"], -1.8),
    (&["not", "working"], -1.8),
    (&["stopped", "working"], -2.0),
    (&["fell", "apart"], -2.0),
    (&["broke", "down"], -1.8),
    (&["let", "down"], -1.6),
    (&["not", "worth"], -1.5),
    (&["nothing", "special"], -1.0),
    (&["thumbs", "up"], 2.0),
    (&["thumbs", "down"], -2.0),
    (&["top", "notch"], 2.5),
];

/// Sentence adverbs whose stem looks like an opinion word but which only
/// mark stance ("Honestly, ...", "Seriously, ...").
const NOT_OPINIONS: &[&str] = &[
    "honestly",
    "frankly",
    "seriously",
    "fairly",
    "literally",
    "kindly",
];

/// Words that flip (and dampen) the next opinion word: "not good".
const NEGATORS: &[&str] = &[
    "not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "nowhere", "without",
    "hardly", "barely", "scarcely", "cannot", "dont", "doesnt", "didnt", "isnt", "wasnt", "arent",
    "werent", "cant", "wont", "couldnt", "shouldnt", "wouldnt", "havent", "hasnt", "aint",
];

/// Scale applied to a negated valence: flips the sign and dampens it, as
/// "not good" is milder than "bad" (VADER uses the same constant).
pub(crate) const NEGATION_SCALAR: f64 = -0.74;

/// Intensifiers (> 1) and diminishers (< 1) and their multipliers.
const MODIFIERS: &[(&str, f64)] = &[
    ("absolutely", 1.4),
    ("completely", 1.3),
    ("deeply", 1.3),
    ("especially", 1.2),
    ("exceptionally", 1.5),
    ("extremely", 1.5),
    ("highly", 1.4),
    ("incredibly", 1.5),
    ("particularly", 1.2),
    ("pretty", 1.1),
    ("quite", 1.1),
    ("really", 1.3),
    ("so", 1.3),
    ("super", 1.3),
    ("too", 1.2),
    ("totally", 1.3),
    ("truly", 1.3),
    ("utterly", 1.4),
    ("very", 1.3),
    ("fairly", 0.8),
    ("marginally", 0.6),
    ("mildly", 0.6),
    ("partly", 0.7),
    ("rather", 0.9),
    ("slightly", 0.6),
    ("somewhat", 0.7),
];

/// Words after which the following clause carries the main opinion.
pub(crate) const CONTRAST: &[&str] = &["but", "however", "nevertheless", "nonetheless"];

/// Words opening a concession, whose clause carries less weight.
pub(crate) const CONCESSIVE: &[&str] = &["although", "though", "despite", "albeit"];

/// Emoji and ASCII emoticons with a clear polarity.
pub(crate) const EMOTICONS: &[(&str, f64)] = &[
    ("😀", 2.0),
    ("😃", 2.0),
    ("😄", 2.0),
    ("😁", 2.0),
    ("😊", 2.0),
    ("🙂", 1.5),
    ("😍", 2.7),
    ("🥰", 2.7),
    ("😘", 2.0),
    ("👍", 2.0),
    ("❤", 2.5),
    ("💕", 2.5),
    ("🎉", 2.0),
    ("👌", 1.8),
    ("😂", 1.5),
    (":)", 1.8),
    (":-)", 1.8),
    (":D", 2.2),
    ("😞", -2.0),
    ("😢", -2.2),
    ("😭", -2.4),
    ("😡", -2.8),
    ("😠", -2.5),
    ("👎", -2.0),
    ("💔", -2.5),
    ("😤", -1.8),
    ("🤬", -3.0),
    ("😒", -1.6),
    ("🙁", -1.6),
    ("☹", -1.8),
    ("😩", -2.0),
    ("😫", -2.0),
    ("🤮", -2.8),
    (":(", -1.8),
    (":-(", -1.8),
];

fn exact_map() -> &'static HashMap<&'static str, f64> {
    static MAP: OnceLock<HashMap<&'static str, f64>> = OnceLock::new();
    MAP.get_or_init(|| WORDS.iter().copied().collect())
}

/// Stem -> valence, for inflections the table does not list ("terribly"
/// finds "terrible"). Built in table order and keeping the first entry, so
/// it is deterministic; it is only used for lookups, never iterated.
fn stem_map() -> &'static HashMap<String, f64> {
    static MAP: OnceLock<HashMap<String, f64>> = OnceLock::new();
    MAP.get_or_init(|| {
        let mut m = HashMap::new();
        for &(w, v) in WORDS {
            m.entry(stem(w)).or_insert(v);
        }
        m
    })
}

/// Valence of an opinion word, by exact form first, then by stem.
/// Negators have none (they act on other words). Modifiers are not listed,
/// except "pretty", which the caller disambiguates ("pretty good" vs "a
/// pretty town").
pub(crate) fn valence(word: &str) -> Option<f64> {
    if is_negator(word) || NOT_OPINIONS.contains(&word) {
        return None;
    }
    exact_map()
        .get(word)
        .copied()
        .or_else(|| stem_map().get(&stem(word)).copied())
}

/// True for negation words, including any "n't" contraction.
pub(crate) fn is_negator(word: &str) -> bool {
    NEGATORS.contains(&word) || word.ends_with("n't")
}

/// Multiplier of an intensifier/diminisher, if `word` is one.
pub(crate) fn modifier(word: &str) -> Option<f64> {
    MODIFIERS.iter().find(|(w, _)| *w == word).map(|&(_, m)| m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_up_exact_and_inflected_forms() {
        assert_eq!(valence("great"), Some(3.1));
        assert!(valence("terribly").is_some_and(|v| v < 0.0));
        assert!(valence("disappoints").is_some_and(|v| v < 0.0));
        assert_eq!(valence("table"), None);
        assert_eq!(valence("very"), None);
        assert_eq!(valence("not"), None);
    }

    #[test]
    fn modifier_lists() {
        assert!(is_negator("isn't") && is_negator("never"));
        assert!(modifier("extremely").is_some_and(|m| m > 1.0));
        assert!(modifier("slightly").is_some_and(|m| m < 1.0));
    }

    #[test]
    fn no_word_listed_twice() {
        let mut words: Vec<&str> = WORDS.iter().map(|(w, _)| *w).collect();
        words.sort_unstable();
        let before = words.len();
        words.dedup();
        assert_eq!(before, words.len());
    }
}
