//! Compose's unit strings: durations (`1m30s`), byte sizes (`512M`) and CPU counts (`0.5`).

/// Parses a Compose duration (`10s`, `1m30s`, `1.5h`, `500ms`) into milliseconds.
pub fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not a duration; write it like 10s, 1m30s or 500ms");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        let number: f64 = rest[..number_len].parse().map_err(|_| bad())?;
        rest = &rest[number_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ns" => 1e-6,
            "us" | "µs" => 1e-3,
            "ms" => 1.0,
            "s" => 1e3,
            "m" => 60e3,
            "h" => 3600e3,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total += number * factor;
    }
    if total > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(total.round() as u64)
}

/// Parses a Compose byte size (`1024`, `512m`, `1.5g`, `2GB`) into bytes; units are binary.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not a size; write it like 512m, 2g or 1048576");
    let lower = text.trim().to_ascii_lowercase();
    let digits = lower.trim_end_matches(['b', 'k', 'm', 'g', 't']);
    let unit = &lower[digits.len()..];
    let number: f64 = digits.parse().map_err(|_| bad())?;
    let factor: f64 = match unit {
        "" | "b" => 1.0,
        "k" | "kb" => 1024.0,
        "m" | "mb" => 1024.0 * 1024.0,
        "g" | "gb" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad()),
    };
    let bytes = number * factor;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes.round() as u64)
}

/// Parses a CPU count (`0.5`, `2`) into thousandths of a CPU.
pub fn parse_millicpus(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not a CPU count; write it like 0.5 or 2");
    let cpus: f64 = text.trim().parse().map_err(|_| bad())?;
    if !cpus.is_finite() || cpus <= 0.0 || cpus > 1e9 {
        return Err(bad());
    }
    Ok((cpus * 1000.0).round() as u64)
}

/// `2 CPUs`, `0.5 CPUs`: millicpus for people.
pub fn format_millicpus(millicpus: u64) -> String {
    let cpus = millicpus as f64 / 1000.0;
    format!("{cpus} CPU{}", if millicpus == 1000 { "" } else { "s" })
}

/// `512 MiB`, `1.5 GiB`: bytes for people.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    let rounded = (value * 10.0).round() / 10.0;
    format!("{rounded} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("10s"), Ok(10_000));
        assert_eq!(parse_duration_ms("1m30s"), Ok(90_000));
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("1.5h"), Ok(5_400_000));
        assert!(parse_duration_ms("10").is_err());
        assert!(parse_duration_ms("s").is_err());
        assert!(parse_duration_ms("").is_err());
        assert!(parse_duration_ms("10x").is_err());
    }

    #[test]
    fn bytes() {
        assert_eq!(parse_bytes("1024"), Ok(1024));
        assert_eq!(parse_bytes("512m"), Ok(512 << 20));
        assert_eq!(parse_bytes("2GB"), Ok(2 << 30));
        assert_eq!(parse_bytes("1.5k"), Ok(1536));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("-1").is_err());
        assert_eq!(format_bytes(512 << 20), "512 MiB");
        assert_eq!(format_bytes(1536 << 20), "1.5 GiB");
    }

    #[test]
    fn cpus() {
        assert_eq!(parse_millicpus("0.5"), Ok(500));
        assert_eq!(parse_millicpus("2"), Ok(2000));
        assert!(parse_millicpus("0").is_err());
        assert!(parse_millicpus("NaN").is_err());
        assert_eq!(format_millicpus(2000), "2 CPUs");
        assert_eq!(format_millicpus(1000), "1 CPU");
    }
}
