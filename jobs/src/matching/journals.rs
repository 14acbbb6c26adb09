//! Journal names: the abbreviation table (squashed abbreviation → full title) and the
//! canonical forms that publications and references both map their journal strings to.

use std::collections::HashMap;

use super::text::squash;

/// The bundled table from Crossref's reference-matching evaluation (MIT).
const BUNDLED: &str = include_str!("../../../data/journals/journal-abbreviations.txt");

/// Maps journal names to canonical squashed forms.
#[derive(Clone, Debug, Default)]
pub struct JournalTable {
    /// Looked up for every journal-name candidate of every reference, so hashed with foldhash
    /// (its keys are the bundled table's, never a message's).
    abbreviation_to_title: HashMap<String, String, foldhash::fast::FixedState>,
}

impl JournalTable {
    /// The table bundled with citeflow.
    pub fn bundled() -> Self {
        Self::parse(BUNDLED)
    }

    /// Parses lines of `squashed abbreviation<TAB>full title`.
    pub fn parse(text: &str) -> Self {
        let abbreviation_to_title = text
            .lines()
            .filter_map(|line| line.split_once('\t'))
            .map(|(abbreviation, title)| (squash(abbreviation), squash(title)))
            .filter(|(abbreviation, title)| !abbreviation.is_empty() && !title.is_empty())
            .collect();
        JournalTable { abbreviation_to_title }
    }

    /// The forms under which a journal name is matched: its squashed form, and the squashed
    /// full title when the name is a known abbreviation.
    pub fn forms(&self, name: &str) -> Vec<String> {
        self.squashed_forms(&squash(name)).map(str::to_string).collect()
    }

    /// [`JournalTable::forms`] of a name already squashed: `squashed` itself, and the full
    /// title when it is a known abbreviation; none when it is shorter than two characters.
    pub(crate) fn squashed_forms<'a>(&'a self, squashed: &'a str) -> impl Iterator<Item = &'a str> {
        let usable = squashed.len() >= 2;
        let title = usable.then(|| self.abbreviation_to_title.get(squashed)).flatten().filter(|title| *title != squashed);
        usable.then_some(squashed).into_iter().chain(title.map(String::as_str))
    }

    /// The forms a publication known by `names` is indexed under: every form of every name
    /// (see [`JournalTable::forms`]), sorted, less each known abbreviation whose full title is
    /// among them. That loses no match: a reference naming the journal by that abbreviation
    /// has the full title among its forms too.
    pub fn indexed_forms<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        let mut forms: Vec<String> = names.into_iter().flat_map(|name| self.forms(name)).collect();
        forms.sort();
        forms.dedup();
        let implied =
            |form: &String| self.abbreviation_to_title.get(form).is_some_and(|title| title != form && forms.binary_search(title).is_ok());
        forms.iter().filter(|form| !implied(form)).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abbreviation_and_title_share_a_form() {
        let table = JournalTable::parse("nengljmed\tnew england journal of medicine\n");
        let abbreviated = table.forms("N Engl J Med");
        let full = table.forms("The New England Journal of Medicine");
        assert!(abbreviated.contains(&"newenglandjournalofmedicine".to_string()));
        assert!(!full.contains(&"newenglandjournalofmedicine".to_string()), "'The' is part of this title");
        assert!(table.forms("New England journal of medicine").iter().any(|f| abbreviated.contains(f)));
    }

    #[test]
    fn an_abbreviation_is_indexed_through_its_full_title() {
        let table = JournalTable::parse("nengljmed\tnew england journal of medicine\nlancet\tlancet\n");
        let indexed = table.indexed_forms(["N Engl J Med", "New England journal of medicine"]);
        assert_eq!(indexed, ["newenglandjournalofmedicine"]);
        for cited in ["N Engl J Med", "N. Engl. J. Med.", "New England Journal of Medicine"] {
            assert!(table.forms(cited).iter().any(|f| indexed.contains(f)), "{cited} meets {indexed:?}");
        }
        let unknown = table.indexed_forms(["Acta Endocrinol (Copenh)", "Acta endocrinologica"]);
        assert_eq!(unknown.len(), 2, "names the table does not link stay: {unknown:?}");
        assert_eq!(table.indexed_forms(["Lancet", "The Lancet"]), ["lancet", "thelancet"]);
    }

    #[test]
    fn bundled_table_loads() {
        assert!(JournalTable::bundled().abbreviation_to_title.len() > 6000);
    }
}
