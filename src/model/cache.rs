//! The per-app load cache: loading a revision again re-reads and re-validates only the apps
//! whose folder changed, keyed by the Git tree id of each `apps/<name>` folder.
//!
//! An app's result (its [`App`] or its located diagnostics) depends on nothing but the files
//! of its folder (the loader reads nothing outside it), its name, `fleet.yaml` (hosts for
//! placement checks, variables for interpolation) and the [`LoadOptions`] (the age
//! identities). So the key of an entry is the folder's tree id, and the cache as a whole
//! remembers the `fleet.yaml` entry and the identities' recipients its results were computed
//! with. The cache also keeps each folder's files (shared `Arc`s, no copy), so that:
//!
//! * a folder skipped while reading the commit ([`crate::git::read_commit_skipping`] with
//!   [`LoadCache::is_fresh`] as the test) can still be validated again when only
//!   `fleet.yaml` or the identities changed, and
//! * fleet-wide findings (a port or route claimed twice) can be located in an app file the
//!   new tree does not hold.
//!
//! # Guarantees
//!
//! * [`load_cached`] returns exactly what [`load_with`](super::load::load_with) returns on
//!   the same files: fleet-wide checks always run on the whole model.
//! * A reused app is shared (`Model::apps` holds `Arc<App>`), not copied: with 1,000 apps a
//!   deep copy of the unchanged ones cost more than everything else a warm load does.
//! * The cache is replaced wholesale by each load: it holds the apps of the last tree loaded
//!   and nothing else, so it never grows past one revision.
//! * A tree without Git ids (read from a directory) is loaded in full and leaves the cache
//!   empty.

use std::collections::BTreeMap;
use std::fmt;

use super::diagnostic::Diagnostic;
use super::load::{
    APPS_DIR, FLEET_FILE, FolderResult, LoadOptions, app_folders, finish_partial,
    load_fleet_located,
};
use super::parallel::{FolderJob, load_folders};
use super::partial::Partial;
use super::source::{SourceEntry, SourceTree};
use super::types::Model;
use crate::parallel::available_threads;

/// What the last [`load_cached`] did, app folder by app folder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadStats {
    /// Results taken from the cache as they were.
    pub reused: usize,
    /// Same files (from the cache), validated again: `fleet.yaml` or the identities changed.
    pub revalidated: usize,
    /// Read from the tree and validated: new or changed folders, or no Git id to key on.
    pub loaded: usize,
}

/// Per-app results of the previous load, keyed by app name. See the module documentation.
#[derive(Default)]
pub struct LoadCache {
    /// The `fleet.yaml` entry the results were computed with.
    fleet: Option<SourceEntry>,
    /// The recipients of the identities the results were computed with.
    recipients: Vec<String>,
    apps: BTreeMap<String, CachedApp>,
    stats: LoadStats,
}

struct CachedApp {
    /// Git id of the `apps/<name>` tree.
    folder_id: String,
    /// The folder's files, and only those.
    files: SourceTree,
    result: FolderResult,
}

impl LoadCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the cache holds folder `folder` (`apps/<name>`) at Git tree `tree_id`, so a
    /// reader may skip its files. Use as the skip test of `git::read_commit_skipping`.
    pub fn is_fresh(&self, folder: &str, tree_id: &str) -> bool {
        folder
            .strip_prefix(APPS_DIR)
            .and_then(|rest| rest.strip_prefix('/'))
            .and_then(|name| self.apps.get(name))
            .is_some_and(|cached| cached.folder_id == tree_id)
    }

    /// Apps held.
    pub fn len(&self) -> usize {
        self.apps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.apps.is_empty()
    }

    /// What the last load did.
    pub fn stats(&self) -> LoadStats {
        self.stats
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        *self = LoadCache::default();
    }
}

/// Shows names, ids and counts only: never file contents or secrets.
impl fmt::Debug for LoadCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: BTreeMap<&str, &str> =
            self.apps.iter().map(|(name, c)| (name.as_str(), c.folder_id.as_str())).collect();
        f.debug_struct("LoadCache")
            .field("recipients", &self.recipients)
            .field("apps", &ids)
            .field("stats", &self.stats)
            .finish()
    }
}

/// [`load_with`](super::load::load_with), reusing the result of every app whose folder
/// (by Git tree id), `fleet.yaml` and identities are unchanged since the load that filled
/// `cache`; then refills `cache` from this tree.
pub fn load_cached(
    tree: &SourceTree,
    options: &LoadOptions,
    cache: &mut LoadCache,
) -> Result<Model, Vec<Diagnostic>> {
    load_cached_partial(tree, options, cache).and_then(Partial::into_model)
}

/// [`load_partial`](super::load::load_partial) with the cache of [`load_cached`].
pub fn load_cached_partial(
    tree: &SourceTree,
    options: &LoadOptions,
    cache: &mut LoadCache,
) -> Result<Partial, Vec<Diagnostic>> {
    let (fleet, diagnostics) = load_fleet_located(tree);
    let fleet_entry = tree.get(FLEET_FILE).cloned();
    let recipients = options.identities.recipients();
    let results_valid = cache.fleet == fleet_entry && cache.recipients == recipients;

    // First what each folder needs, then the folders that need loading on several threads
    // (`model::parallel`), then the new cache in the folders' order.
    let mut previous = std::mem::take(&mut cache.apps);
    let mut stats = LoadStats::default();
    let plans: Vec<(String, Plan)> = app_folders(tree)
        .into_iter()
        .map(|name| {
            let dir = format!("{APPS_DIR}/{name}");
            let id = tree.folder_id(&dir);
            let cached = previous.remove(&name).filter(|c| Some(c.folder_id.as_str()) == id);
            let plan = match (id, cached) {
                (Some(_), Some(cached)) if results_valid => Plan::Reuse(cached),
                (Some(_), Some(cached)) => Plan::Revalidate(cached),
                (Some(id), None) if !tree.is_skipped(&dir) => {
                    Plan::Load { id: id.to_string(), dir }
                }
                _ => Plan::LoadUncached,
            };
            (name, plan)
        })
        .collect();
    let jobs: Vec<FolderJob> = plans
        .iter()
        .filter_map(|(name, plan)| match plan {
            Plan::Reuse(_) => None,
            Plan::Revalidate(cached) => Some(FolderJob { name, tree: &cached.files }),
            Plan::Load { .. } | Plan::LoadUncached => Some(FolderJob { name, tree }),
        })
        .collect();
    let mut loaded = load_folders(&jobs, fleet.as_ref(), options, available_threads()).into_iter();
    drop(jobs);

    let mut next: BTreeMap<String, CachedApp> = BTreeMap::new();
    // Results for folders that cannot be cached (no id, or skipped without a cache entry).
    let mut uncached: Vec<(String, FolderResult)> = Vec::new();
    // `load_folders` gives one result per job, in the jobs' order.
    let mut result = || loaded.next().expect("one result for each folder that was loaded");
    for (name, plan) in plans {
        match plan {
            Plan::Reuse(cached) => {
                stats.reused += 1;
                next.insert(name, cached);
            }
            Plan::Revalidate(mut cached) => {
                stats.revalidated += 1;
                cached.result = result();
                next.insert(name, cached);
            }
            Plan::Load { id, dir } => {
                stats.loaded += 1;
                let mut files = SourceTree::new();
                for (path, entry) in tree.entries_under(&dir) {
                    files.insert_entry(path, entry.clone());
                }
                next.insert(name, CachedApp { folder_id: id, files, result: result() });
            }
            Plan::LoadUncached => {
                stats.loaded += 1;
                uncached.push((name, result()));
            }
        }
    }

    let results: BTreeMap<String, FolderResult> =
        next.iter().map(|(name, c)| (name.clone(), c.result.clone())).chain(uncached).collect();
    let outcome = {
        let next = &next;
        let source = |file: &str| -> Option<&[u8]> {
            let entry = tree.get(file).or_else(|| {
                let name = file.strip_prefix(APPS_DIR)?.strip_prefix('/')?.split('/').next()?;
                next.get(name)?.files.get(file)
            });
            match entry {
                Some(SourceEntry::File(bytes)) => Some(bytes.as_slice()),
                _ => None,
            }
        };
        finish_partial(fleet, results, diagnostics, &source)
            .and_then(|partial| super::digest::keyed_partial(partial, options.digest_key.as_ref()))
    };
    *cache = LoadCache { fleet: fleet_entry, recipients, apps: next, stats };
    outcome
}

/// What [`load_cached_partial`] does with one app folder.
enum Plan {
    /// The folder and everything its result depends on are unchanged: keep the entry.
    Reuse(CachedApp),
    /// The folder is unchanged but `fleet.yaml` or the identities are not: validate the
    /// cached files again.
    Revalidate(CachedApp),
    /// A new or changed folder (`apps/<name>`, its path `dir`) with a Git id: load it and
    /// cache it under `id`.
    Load { id: String, dir: String },
    /// A folder that cannot be cached (no Git id): load it, keep no entry.
    LoadUncached,
}

#[cfg(test)]
mod tests {
    use age::x25519::Identity;
    use proptest::prelude::*;

    use super::*;
    use crate::model::digest::sha256_hex;
    use crate::model::encryption::Identities;
    use crate::model::load::load_with;

    /// One host, so two apps publishing the same port conflict (a fleet-wide finding).
    fn fleet(variant: u8) -> String {
        match variant {
            0 => "hosts:\n  a:\n    endpoint: unix:///var/run/docker.sock\nvariables:\n  TAG: \"1\"\n".into(),
            1 => "hosts:\n  a:\n    endpoint: unix:///var/run/docker.sock\nvariables:\n  TAG: \"2\"\n".into(),
            _ => "hosts: [not, a, map]\n".into(),
        }
    }

    /// App `i` in one of several shapes: valid ones, broken ones, one that conflicts with
    /// app 0 fleet-wide, one with an encrypted secret.
    fn app_files(i: usize, variant: u8, key: &Identity) -> Vec<(String, Vec<u8>)> {
        let dir = format!("apps/app{i}");
        let port = 8000 + i;
        let compose = match variant {
            0 => format!("services:\n  web:\n    image: web:${{TAG}}\n    ports: [\"{port}:80\"]\n"),
            1 => format!("services:\n  web:\n    image: web:2\n    ports: [\"{port}:80\"]\n    environment: {{A: b}}\n"),
            2 => "services:\n  web:\n    image: [unclosed\n".into(),
            3 => "services:\n  web:\n    image: x\n    deploy:\n      replicas: three\n".into(),
            // Publishes app 0's port: a conflict only the fleet-wide check sees.
            4 => "# conflicts\nservices:\n  web:\n    image: web:1\n    ports: [\"8000:80\"]\n".into(),
            5 => "services:\n  web:\n    image: web:1\n    secrets: [token]\nsecrets:\n  token:\n    file: ./token.age\n".into(),
            _ => "services:\n  web:\n    image: x\n    networks: [missing]\n".into(),
        };
        let mut files = vec![(format!("{dir}/compose.yaml"), compose.into_bytes())];
        if variant == 5 {
            let secret = age::encrypt(&key.to_public(), format!("token {i}").as_bytes()).unwrap();
            files.push((format!("{dir}/token.age"), secret));
        }
        files
    }

    /// What read_commit gives: the files, with an id per app folder and for fleet.yaml
    /// (here a digest of the folder's files, which changes exactly when they do).
    fn with_ids(files: &[(String, Vec<u8>)]) -> SourceTree {
        let mut tree = SourceTree::new();
        let mut folders: BTreeMap<String, String> = BTreeMap::new();
        for (path, bytes) in files {
            tree.insert_file(path.clone(), bytes.clone());
            if let Some(rest) = path.strip_prefix("apps/") {
                let folder = format!("apps/{}", rest.split('/').next().unwrap());
                folders
                    .entry(folder)
                    .or_default()
                    .push_str(&format!("{path}:{}\n", sha256_hex(bytes)));
            }
        }
        for (folder, listing) in folders {
            tree.set_folder_id(folder, sha256_hex(listing.as_bytes()));
        }
        if let Some(SourceEntry::File(bytes)) = tree.get(FLEET_FILE).cloned() {
            tree.set_folder_id(FLEET_FILE, sha256_hex(&bytes));
        }
        tree
    }

    /// What read_commit_skipping gives with `cache.is_fresh` as the skip test.
    fn skipping(full: &SourceTree, cache: &LoadCache) -> SourceTree {
        let mut tree = SourceTree::new();
        let ids: Vec<(String, String)> =
            full.folder_ids().map(|(p, i)| (p.to_string(), i.to_string())).collect();
        let skipped: Vec<&str> = ids
            .iter()
            .filter(|(path, id)| path.starts_with("apps/") && cache.is_fresh(path, id))
            .map(|(path, _)| path.as_str())
            .collect();
        for path in full.paths() {
            if !skipped.iter().any(|folder| path.starts_with(&format!("{folder}/"))) {
                tree.insert_entry(path, full.get(path).unwrap().clone());
            }
        }
        for (path, id) in &ids {
            tree.set_folder_id(path.clone(), id.clone());
        }
        for folder in skipped {
            tree.mark_skipped(folder);
        }
        tree
    }

    struct Repo {
        fleet: u8,
        apps: BTreeMap<usize, u8>,
    }

    impl Repo {
        fn files(&self, key: &Identity) -> Vec<(String, Vec<u8>)> {
            let mut files = vec![(FLEET_FILE.to_string(), fleet(self.fleet).into_bytes())];
            for (i, variant) in &self.apps {
                files.extend(app_files(*i, *variant, key));
            }
            files
        }
    }

    fn options(key: &Identity, with_key: bool) -> LoadOptions {
        let identities = if with_key { vec![key.clone()] } else { Vec::new() };
        LoadOptions { identities: Identities::new(identities), ..LoadOptions::default() }
    }

    #[test]
    fn a_change_to_one_app_reloads_that_app_only() {
        let key = Identity::generate();
        let options = options(&key, true);
        let mut repo = Repo { fleet: 0, apps: (0..6).map(|i| (i, 0)).collect() };
        let mut cache = LoadCache::new();
        let first = with_ids(&repo.files(&key));
        let model = load_cached(&skipping(&first, &cache), &options, &mut cache).unwrap();
        assert_eq!(Ok(model), load_with(&first, &options));
        assert_eq!(cache.stats(), LoadStats { reused: 0, revalidated: 0, loaded: 6 });

        repo.apps.insert(3, 1);
        let second = with_ids(&repo.files(&key));
        let tree = skipping(&second, &cache);
        assert_eq!(tree.paths().filter(|p| p.starts_with("apps/")).count(), 1);
        let model = load_cached(&tree, &options, &mut cache).unwrap();
        assert_eq!(cache.stats(), LoadStats { reused: 5, revalidated: 0, loaded: 1 });
        assert_eq!(model.apps["app3"].services["web"].image, "web:2");
        assert_eq!(Ok(model), load_with(&second, &options));

        // fleet.yaml changes: every app is validated again, from the cached files.
        repo.fleet = 1;
        let third = with_ids(&repo.files(&key));
        let model = load_cached(&skipping(&third, &cache), &options, &mut cache).unwrap();
        assert_eq!(cache.stats(), LoadStats { reused: 0, revalidated: 6, loaded: 0 });
        assert_eq!(model.apps["app0"].services["web"].image, "web:2");
        assert_eq!(Ok(model), load_with(&third, &options));

        // An app removed is dropped from the cache.
        repo.apps.remove(&5);
        let fourth = with_ids(&repo.files(&key));
        load_cached(&skipping(&fourth, &cache), &options, &mut cache).unwrap();
        assert_eq!(cache.len(), 5);
        assert!(!format!("{cache:?}").contains("app5"));
    }

    #[test]
    fn fleet_wide_findings_in_a_skipped_app_are_located() {
        let key = Identity::generate();
        let options = options(&key, true);
        let mut repo = Repo { fleet: 0, apps: [(0, 4), (1, 0)].into() };
        let mut cache = LoadCache::new();
        let first = with_ids(&repo.files(&key));
        load_cached(&first, &options, &mut cache).unwrap();
        // app1 now publishes 8000 too: app0 (skipped, unchanged) is in the conflict.
        repo.apps.insert(1, 4);
        let second = with_ids(&repo.files(&key));
        let tree = skipping(&second, &cache);
        assert!(tree.is_skipped("apps/app0"));
        let diagnostics = load_cached(&tree, &options, &mut cache).unwrap_err();
        let expected = load_with(&second, &options).unwrap_err();
        assert_eq!(diagnostics, expected);
        let app0 = diagnostics.iter().find(|d| d.file == "apps/app0/compose.yaml").unwrap();
        assert_eq!((app0.code, app0.line, app0.column), ("port-conflict", 5, 12));
    }

    #[test]
    fn identities_are_part_of_the_key() {
        let key = Identity::generate();
        let repo = Repo { fleet: 0, apps: [(0, 5), (1, 0)].into() };
        let tree = with_ids(&repo.files(&key));
        let mut cache = LoadCache::new();
        let without = load_cached(&tree, &options(&key, false), &mut cache).unwrap_err();
        assert_eq!(without[0].code, "secret-decrypt");
        let with = load_cached(&skipping(&tree, &cache), &options(&key, true), &mut cache);
        assert_eq!(cache.stats(), LoadStats { reused: 0, revalidated: 2, loaded: 0 });
        assert_eq!(with.unwrap().apps["app0"].secrets["token"].content.as_slice(), b"token 0");
    }

    #[test]
    fn a_skipped_folder_the_cache_does_not_hold_is_reported_not_guessed() {
        let key = Identity::generate();
        let repo = Repo { fleet: 0, apps: [(0, 0), (1, 0)].into() };
        let full = with_ids(&repo.files(&key));
        let mut warm = LoadCache::new();
        load_cached(&full, &options(&key, true), &mut warm).unwrap();
        let tree = skipping(&full, &warm);
        let mut cold = LoadCache::new();
        let diagnostics = load_cached(&tree, &options(&key, true), &mut cold).unwrap_err();
        let codes: Vec<(&str, &str)> =
            diagnostics.iter().map(|d| (d.file.as_str(), d.code)).collect();
        assert_eq!(codes, [("apps/app0", "not-read"), ("apps/app1", "not-read")]);
        // Nothing unread is cached as if it had been read.
        assert!(cold.is_empty());
    }

    #[test]
    fn a_directory_read_is_loaded_in_full_and_not_cached() {
        let key = Identity::generate();
        let repo = Repo { fleet: 0, apps: [(0, 0), (1, 6)].into() };
        let tree: SourceTree = repo.files(&key).into_iter().collect();
        let mut cache = LoadCache::new();
        let result = load_cached(&tree, &options(&key, true), &mut cache);
        assert_eq!(result, load_with(&tree, &options(&key, true)));
        assert_eq!(cache.stats().loaded, 2);
        assert!(cache.is_empty());
    }

    /// An edit to the repository between two loads.
    #[derive(Debug, Clone)]
    enum Edit {
        App(usize, u8),
        Remove(usize),
        Fleet(u8),
        Identity(bool),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        prop_oneof![
            6 => (0..6usize, 0..7u8).prop_map(|(i, v)| Edit::App(i, v)),
            1 => (0..6usize).prop_map(Edit::Remove),
            1 => (0..3u8).prop_map(Edit::Fleet),
            1 => any::<bool>().prop_map(Edit::Identity),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// After any sequence of edits, loading with the warm cache from a tree that skips
        /// what the cache holds gives exactly what a full load gives.
        #[test]
        fn load_cached_equals_load_with(edits in prop::collection::vec(edit(), 1..8)) {
            let key = Identity::generate();
            let mut repo = Repo { fleet: 0, apps: (0..4).map(|i| (i, 0)).collect() };
            let mut with_key = true;
            let mut cache = LoadCache::new();
            let full = with_ids(&repo.files(&key));
            load_cached(&full, &options(&key, with_key), &mut cache).unwrap();
            for edit in edits {
                match edit {
                    Edit::App(i, v) => { repo.apps.insert(i, v); }
                    Edit::Remove(i) => { repo.apps.remove(&i); }
                    Edit::Fleet(v) => repo.fleet = v,
                    Edit::Identity(on) => with_key = on,
                }
                let full = with_ids(&repo.files(&key));
                let options = options(&key, with_key);
                let cached = load_cached(&skipping(&full, &cache), &options, &mut cache);
                prop_assert_eq!(cached, load_with(&full, &options));
                prop_assert_eq!(cache.len(), repo.apps.len());
            }
        }
    }
}
