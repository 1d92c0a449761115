//! The page's static files, compiled into the binary: the stylesheet, the script that swaps
//! sections live, and the favicon. Nothing is loaded from anywhere else.

/// `(path, content type, body)` of every embedded file.
pub const FILES: [(&str, &str, &str); 3] = [
    ("/assets/gitfleet.css", "text/css; charset=utf-8", include_str!("assets/gitfleet.css")),
    ("/assets/gitfleet.js", "text/javascript; charset=utf-8", include_str!("assets/gitfleet.js")),
    ("/favicon.svg", "image/svg+xml", include_str!("assets/favicon.svg")),
];

/// The stylesheet.
pub const CSS: &str = FILES[0].2;

/// The relative luminance of an `#rrggbb` colour (WCAG 2.x).
pub fn luminance(hex: &str) -> Option<f64> {
    let hex = hex.strip_prefix('#')?;
    if hex.len() != 6 {
        return None;
    }
    let channel = |i: usize| -> Option<f64> {
        let c = f64::from(u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()?) / 255.0;
        Some(if c <= 0.04045 { c / 12.92 } else { ((c + 0.055) / 1.055).powf(2.4) })
    };
    Some(0.2126 * channel(0)? + 0.7152 * channel(2)? + 0.0722 * channel(4)?)
}

/// The contrast ratio of two `#rrggbb` colours (1 to 21).
pub fn contrast(a: &str, b: &str) -> Option<f64> {
    let (a, b) = (luminance(a)?, luminance(b)?);
    let (hi, lo) = if a > b { (a, b) } else { (b, a) };
    Some((hi + 0.05) / (lo + 0.05))
}

/// `(name, value)` of custom properties, in order.
pub type Palette = Vec<(String, String)>;

/// The custom properties (`--name: #rrggbb;`) of the stylesheet's light palette (`:root`)
/// and of its dark one (inside `prefers-color-scheme: dark`).
pub fn palettes(css: &str) -> (Palette, Palette) {
    let properties = |block: &str| -> Palette {
        block
            .lines()
            .filter_map(|line| {
                let (name, value) = line.trim().strip_prefix("--")?.split_once(':')?;
                Some((name.trim().to_string(), value.trim().trim_end_matches(';').to_string()))
            })
            .collect()
    };
    let dark_at = css.find("prefers-color-scheme: dark").unwrap_or(css.len());
    let light_end = css[..dark_at].rfind('}').unwrap_or(dark_at);
    let dark_block = &css[dark_at..];
    let dark_end = dark_block.find("}\n}").unwrap_or(dark_block.len());
    (properties(&css[..light_end]), properties(&dark_block[..dark_end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contrast_of_known_pairs() {
        let black_white = contrast("#000000", "#ffffff").unwrap();
        assert!((black_white - 21.0).abs() < 1e-9);
        assert!((contrast("#777777", "#ffffff").unwrap() - 4.48).abs() < 0.01);
        assert_eq!(contrast("#fff", "#000000"), None);
    }

    /// Every text colour of the page on both of its backgrounds, in both themes, reaches
    /// WCAG AA for normal text (4.5:1).
    #[test]
    fn the_palette_passes_wcag_aa_in_both_themes() {
        let (light, dark) = palettes(CSS);
        for (theme, palette) in [("light", light), ("dark", dark)] {
            let get = |name: &str| {
                palette
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_else(|| panic!("{theme}: --{name} missing"))
            };
            for text in ["fg", "muted", "link", "ok", "warn", "bad", "idle"] {
                for background in ["bg", "surface"] {
                    let ratio = contrast(&get(text), &get(background)).unwrap();
                    eprintln!("{theme}: --{text} on --{background}: {ratio:.2}:1");
                    assert!(
                        ratio >= 4.5,
                        "{theme}: --{text} on --{background} is {ratio:.2}:1, below 4.5:1"
                    );
                }
            }
        }
    }
}
