//! Times the stages of resolving a package set: `resolve_timing SET MIRROR CACHE`.

use std::path::Path;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, set, mirror, cache] = &args[..] else {
        eprintln!("usage: resolve_timing SET MIRROR CACHE");
        std::process::exit(2);
    };
    let t = Instant::now();
    let set = kld_darksite::set::PackageSet::load(Path::new(set)).unwrap();
    let fetcher = kld_darksite::fetch::Fetcher::new();
    let (_, sources) =
        kld_darksite::upstream::fetch(&set, mirror, &fetcher, Path::new(cache)).unwrap();
    let t1 = t.elapsed();
    let u = kld_darksite::resolve::Universe::new(sources, &set.architectures);
    let t2 = t.elapsed();
    let r = kld_darksite::resolve::resolve(&u, &set);
    let t3 = t.elapsed();
    println!(
        "fetch+verify+decompress+parse {:.3} s, universe {:.3} s, resolve {:.3} s: {} packages",
        t1.as_secs_f64(),
        (t2 - t1).as_secs_f64(),
        (t3 - t2).as_secs_f64(),
        r.packages.len()
    );
}
