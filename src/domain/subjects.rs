//! The names of arXiv's subject classes (`cs.RO` → "Robotics"), from
//! arXiv's category taxonomy.
//!
//! A paper's categories are curated topical metadata: its authors chose
//! them and arXiv's moderators checked them. Spelled out, they let a
//! broad topic find a paper whose words never name the field ("robotics"
//! finds a cs.RO paper about grasping; "physics" a hep-ph paper), both
//! lexically (`rank` indexes the names as a weak field of their own) and
//! by meaning (`embed::paper_text` appends them).

/// The archive names prefixed to their subjects where the subject's own
/// name does not say the field ("Optics" → "Physics: Optics"). Not eess:
/// its subjects say their field ("Signal Processing"), and "Electrical
/// Engineering and Systems Science" would lend the generic words
/// "engineering", "systems" and "science" to every signal-processing paper.
const ARCHIVES: &[(&str, &str)] = &[
    ("astro-ph", "Astrophysics"),
    ("cond-mat", "Condensed Matter Physics"),
    ("physics", "Physics"),
    ("nlin", "Nonlinear Sciences"),
    ("q-bio", "Quantitative Biology"),
    ("q-fin", "Quantitative Finance"),
    ("stat", "Statistics"),
    ("econ", "Economics"),
    ("math", "Mathematics"),
];

/// Archives and groups of archives named only in the taxonomy (not
/// prefixed to their subjects' names: "Computer Science: Robotics" would
/// lend generic words to every cs paper).
const GROUPS: &[(&str, &str)] = &[
    ("cs", "Computer Science"),
    ("eess", "Electrical Engineering and Systems Science"),
    ("hep", "High Energy Physics"),
    ("nucl", "Nuclear Physics"),
];

/// Subject class → name. Archives without subject classes (`gr-qc`,
/// `hep-th`, …) are listed by archive.
const SUBJECTS: &[(&str, &str)] = &[
    ("cs.AI", "Artificial Intelligence"),
    ("cs.AR", "Hardware Architecture"),
    ("cs.CC", "Computational Complexity"),
    ("cs.CE", "Computational Engineering, Finance, and Science"),
    ("cs.CG", "Computational Geometry"),
    ("cs.CL", "Computation and Language"),
    ("cs.CR", "Cryptography and Security"),
    ("cs.CV", "Computer Vision and Pattern Recognition"),
    ("cs.CY", "Computers and Society"),
    ("cs.DB", "Databases"),
    ("cs.DC", "Distributed, Parallel, and Cluster Computing"),
    ("cs.DL", "Digital Libraries"),
    ("cs.DM", "Discrete Mathematics"),
    ("cs.DS", "Data Structures and Algorithms"),
    ("cs.ET", "Emerging Technologies"),
    ("cs.FL", "Formal Languages and Automata Theory"),
    ("cs.GL", "General Literature"),
    ("cs.GR", "Graphics"),
    ("cs.GT", "Computer Science and Game Theory"),
    ("cs.HC", "Human-Computer Interaction"),
    ("cs.IR", "Information Retrieval"),
    ("cs.IT", "Information Theory"),
    ("cs.LG", "Machine Learning"),
    ("cs.LO", "Logic in Computer Science"),
    ("cs.MA", "Multiagent Systems"),
    ("cs.MM", "Multimedia"),
    ("cs.MS", "Mathematical Software"),
    ("cs.NA", "Numerical Analysis"),
    ("cs.NE", "Neural and Evolutionary Computing"),
    ("cs.NI", "Networking and Internet Architecture"),
    ("cs.OS", "Operating Systems"),
    ("cs.PF", "Performance"),
    ("cs.PL", "Programming Languages"),
    ("cs.RO", "Robotics"),
    ("cs.SC", "Symbolic Computation"),
    ("cs.SD", "Sound"),
    ("cs.SE", "Software Engineering"),
    ("cs.SI", "Social and Information Networks"),
    ("cs.SY", "Systems and Control"),
    ("econ.EM", "Econometrics"),
    ("econ.GN", "General Economics"),
    ("econ.TH", "Theoretical Economics"),
    ("eess.AS", "Audio and Speech Processing"),
    ("eess.IV", "Image and Video Processing"),
    ("eess.SP", "Signal Processing"),
    ("eess.SY", "Systems and Control"),
    ("math.AC", "Commutative Algebra"),
    ("math.AG", "Algebraic Geometry"),
    ("math.AP", "Analysis of PDEs"),
    ("math.AT", "Algebraic Topology"),
    ("math.CA", "Classical Analysis and ODEs"),
    ("math.CO", "Combinatorics"),
    ("math.CT", "Category Theory"),
    ("math.CV", "Complex Variables"),
    ("math.DG", "Differential Geometry"),
    ("math.DS", "Dynamical Systems"),
    ("math.FA", "Functional Analysis"),
    ("math.GM", "General Mathematics"),
    ("math.GN", "General Topology"),
    ("math.GR", "Group Theory"),
    ("math.GT", "Geometric Topology"),
    ("math.HO", "History and Overview"),
    ("math.IT", "Information Theory"),
    ("math.KT", "K-Theory and Homology"),
    ("math.LO", "Logic"),
    ("math.MG", "Metric Geometry"),
    ("math.MP", "Mathematical Physics"),
    ("math.NA", "Numerical Analysis"),
    ("math.NT", "Number Theory"),
    ("math.OA", "Operator Algebras"),
    ("math.OC", "Optimization and Control"),
    ("math.PR", "Probability"),
    ("math.QA", "Quantum Algebra"),
    ("math.RA", "Rings and Algebras"),
    ("math.RT", "Representation Theory"),
    ("math.SG", "Symplectic Geometry"),
    ("math.SP", "Spectral Theory"),
    ("math.ST", "Statistics Theory"),
    ("astro-ph", "Astrophysics"),
    ("astro-ph.CO", "Cosmology and Nongalactic Astrophysics"),
    ("astro-ph.EP", "Earth and Planetary Astrophysics"),
    ("astro-ph.GA", "Astrophysics of Galaxies"),
    ("astro-ph.HE", "High Energy Astrophysical Phenomena"),
    (
        "astro-ph.IM",
        "Instrumentation and Methods for Astrophysics",
    ),
    ("astro-ph.SR", "Solar and Stellar Astrophysics"),
    ("cond-mat", "Condensed Matter Physics"),
    ("cond-mat.dis-nn", "Disordered Systems and Neural Networks"),
    ("cond-mat.mes-hall", "Mesoscale and Nanoscale Physics"),
    ("cond-mat.mtrl-sci", "Materials Science"),
    ("cond-mat.other", "Other Condensed Matter"),
    ("cond-mat.quant-gas", "Quantum Gases"),
    ("cond-mat.soft", "Soft Condensed Matter"),
    ("cond-mat.stat-mech", "Statistical Mechanics"),
    ("cond-mat.str-el", "Strongly Correlated Electrons"),
    ("cond-mat.supr-con", "Superconductivity"),
    ("gr-qc", "General Relativity and Quantum Cosmology"),
    ("hep-ex", "High Energy Physics - Experiment"),
    ("hep-lat", "High Energy Physics - Lattice"),
    ("hep-ph", "High Energy Physics - Phenomenology"),
    ("hep-th", "High Energy Physics - Theory"),
    ("math-ph", "Mathematical Physics"),
    ("nlin.AO", "Adaptation and Self-Organizing Systems"),
    ("nlin.CD", "Chaotic Dynamics"),
    ("nlin.CG", "Cellular Automata and Lattice Gases"),
    ("nlin.PS", "Pattern Formation and Solitons"),
    ("nlin.SI", "Exactly Solvable and Integrable Systems"),
    ("nucl-ex", "Nuclear Physics - Experiment"),
    ("nucl-th", "Nuclear Physics - Theory"),
    ("physics.acc-ph", "Accelerator Physics"),
    ("physics.ao-ph", "Atmospheric and Oceanic Physics"),
    ("physics.app-ph", "Applied Physics"),
    ("physics.atm-clus", "Atomic and Molecular Clusters"),
    ("physics.atom-ph", "Atomic Physics"),
    ("physics.bio-ph", "Biological Physics"),
    ("physics.chem-ph", "Chemical Physics"),
    ("physics.class-ph", "Classical Physics"),
    ("physics.comp-ph", "Computational Physics"),
    (
        "physics.data-an",
        "Data Analysis, Statistics and Probability",
    ),
    ("physics.ed-ph", "Physics Education"),
    ("physics.flu-dyn", "Fluid Dynamics"),
    ("physics.gen-ph", "General Physics"),
    ("physics.geo-ph", "Geophysics"),
    ("physics.hist-ph", "History and Philosophy of Physics"),
    ("physics.ins-det", "Instrumentation and Detectors"),
    ("physics.med-ph", "Medical Physics"),
    ("physics.optics", "Optics"),
    ("physics.plasm-ph", "Plasma Physics"),
    ("physics.pop-ph", "Popular Physics"),
    ("physics.soc-ph", "Physics and Society"),
    ("physics.space-ph", "Space Physics"),
    ("quant-ph", "Quantum Physics"),
    ("q-bio.BM", "Biomolecules"),
    ("q-bio.CB", "Cell Behavior"),
    ("q-bio.GN", "Genomics"),
    ("q-bio.MN", "Molecular Networks"),
    ("q-bio.NC", "Neurons and Cognition"),
    ("q-bio.OT", "Other Quantitative Biology"),
    ("q-bio.PE", "Populations and Evolution"),
    ("q-bio.QM", "Quantitative Methods"),
    ("q-bio.SC", "Subcellular Processes"),
    ("q-bio.TO", "Tissues and Organs"),
    ("q-fin.CP", "Computational Finance"),
    ("q-fin.EC", "Economics"),
    ("q-fin.GN", "General Finance"),
    ("q-fin.MF", "Mathematical Finance"),
    ("q-fin.PM", "Portfolio Management"),
    ("q-fin.PR", "Pricing of Securities"),
    ("q-fin.RM", "Risk Management"),
    ("q-fin.ST", "Statistical Finance"),
    ("q-fin.TR", "Trading and Market Microstructure"),
    ("stat.AP", "Applications"),
    ("stat.CO", "Computation"),
    ("stat.ME", "Methodology"),
    ("stat.ML", "Machine Learning"),
    ("stat.OT", "Other Statistics"),
    ("stat.TH", "Statistics Theory"),
];

/// The name of an arXiv category as a reader would say it, with its field
/// where the subject alone does not say it: `cs.RO` → "Robotics",
/// `physics.optics` → "Physics: Optics", `q-bio.GN` → "Quantitative
/// Biology: Genomics". Case-insensitive; `None` for a code arXiv does not
/// list.
pub fn subject_name(code: &str) -> Option<String> {
    let code = code.trim();
    let (_, name) = SUBJECTS
        .iter()
        .find(|(c, _)| c.eq_ignore_ascii_case(code))?;
    let archive = code.split('.').next().unwrap_or(code);
    let prefix = ARCHIVES
        .iter()
        .find(|(a, _)| a.eq_ignore_ascii_case(archive) && code.contains('.'))
        .map(|(_, n)| *n);
    Some(match prefix {
        Some(p) if !name.contains(first_word(p)) => format!("{p}: {name}"),
        _ => (*name).to_string(),
    })
}

/// The names of a paper's categories, distinct, in the paper's order.
pub fn subject_names(categories: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in categories {
        if let Some(n) = subject_name(c) {
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    out
}

/// Every subject class and archive of arXiv's taxonomy with the text a
/// model embeds for it: its name where arXiv names it, then what it
/// covers ("Quantitative Biology: Neurons and Cognition — neuroscience:
/// neurons and cognition, the brain, …"). Ranking maps a topic to the
/// entries it means by the cosine of their vectors.
pub fn taxonomy() -> Vec<(&'static str, String)> {
    super::taxonomy::DESCRIPTIONS
        .iter()
        .map(|(code, what)| {
            let group = ARCHIVES.iter().chain(GROUPS).find(|a| a.0 == *code);
            let text = match subject_name(code).or_else(|| group.map(|g| g.1.to_string())) {
                Some(name) => format!("{name} — {what}"),
                None => (*what).to_string(),
            };
            (*code, text)
        })
        .collect()
}

/// Whether a taxonomy entry covers a paper's category: the same class, or
/// an archive (or archive group: `hep` covers `hep-ph`) and a class in
/// it. Case-insensitive.
pub fn subject_covers(entry: &str, category: &str) -> bool {
    let (e, c) = (entry.trim(), category.trim());
    if c.eq_ignore_ascii_case(e) {
        return true;
    }
    c.len() > e.len()
        && c.is_char_boundary(e.len())
        && c[..e.len()].eq_ignore_ascii_case(e)
        && matches!(c.as_bytes()[e.len()], b'.' | b'-')
}

fn first_word(s: &str) -> &str {
    s.split_whitespace().next().unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_named_with_their_field_where_the_name_lacks_it() {
        assert_eq!(subject_name("cs.RO").as_deref(), Some("Robotics"));
        assert_eq!(subject_name("CS.ro").as_deref(), Some("Robotics"));
        assert_eq!(
            subject_name("physics.optics").as_deref(),
            Some("Physics: Optics")
        );
        // The name already says it.
        assert_eq!(
            subject_name("physics.plasm-ph").as_deref(),
            Some("Plasma Physics")
        );
        assert_eq!(
            subject_name("q-bio.GN").as_deref(),
            Some("Quantitative Biology: Genomics")
        );
        assert_eq!(
            subject_name("hep-ph").as_deref(),
            Some("High Energy Physics - Phenomenology")
        );
        assert_eq!(subject_name("cs.XX"), None);
        assert_eq!(subject_name(""), None);
    }

    #[test]
    fn every_taxonomy_entry_says_what_it_covers_and_every_named_subject_has_one() {
        let entries = taxonomy();
        let nc = entries.iter().find(|e| e.0 == "q-bio.NC").unwrap();
        assert!(
            nc.1.starts_with("Quantitative Biology: Neurons and Cognition — ")
                && nc.1.contains("neuroscience"),
            "{}",
            nc.1
        );
        let econ = entries.iter().find(|e| e.0 == "econ").unwrap();
        assert!(econ.1.starts_with("Economics — economics:"), "{}", econ.1);
        for (code, _) in SUBJECTS {
            assert!(
                entries.iter().any(|e| e.0 == *code),
                "{code} has no description"
            );
        }
        let mut codes: Vec<&str> = entries.iter().map(|e| e.0).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), entries.len(), "a code is described twice");
    }

    #[test]
    fn an_archive_covers_its_classes_and_a_class_only_itself() {
        assert!(subject_covers("econ", "econ.GN"));
        assert!(subject_covers("hep", "hep-ph"));
        assert!(subject_covers("q-bio.NC", "Q-BIO.nc"));
        assert!(subject_covers("cs", "cs.RO"));
        assert!(!subject_covers("cs.RO", "cs"));
        assert!(!subject_covers("cs.RO", "cs.ROX"));
        assert!(!subject_covers("q-bio", "q-fin.EC"));
        assert!(!subject_covers("math", "mathematics"));
    }

    #[test]
    fn a_papers_subject_names_are_distinct_and_in_order() {
        let cats = ["cs.LG", "stat.ML", "cs.LG", "bogus"].map(String::from);
        assert_eq!(
            subject_names(&cats),
            ["Machine Learning", "Statistics: Machine Learning"]
        );
    }
}
