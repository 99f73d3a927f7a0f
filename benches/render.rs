//! How fast the sandbox renderer makes video: `cargo bench --bench render`.
//!
//! Renders 5-second clips (text to video, watermarked, as a relax-tier sandbox task would) at
//! 720p and 1080p a few times each and prints the best and median wall time, frames per second
//! and the real-time factor (video seconds per wall-clock second).

use std::time::{Duration, Instant};

use lumagate::media::render::{frame_size, render, RenderSpec, FPS};

const RUNS: usize = 3;
const SECONDS: u32 = 5;

fn main() {
    println!(
        "{:<12} {:>7} {:>9} {:>9} {:>9} {:>10} {:>10}",
        "resolution", "frames", "best s", "median s", "fps", "realtime×", "MiB"
    );
    for short_side in [720, 1080] {
        let (width, height) = frame_size((16, 9), short_side);
        let spec = RenderSpec {
            width,
            height,
            frames: SECONDS * FPS,
            prompt: "a lighthouse on a cliff at dusk, waves crashing, slow aerial orbit".into(),
            watermark: true,
            ..RenderSpec::default()
        };
        let mut times: Vec<Duration> = Vec::new();
        let mut size = 0;
        for _ in 0..RUNS {
            let started = Instant::now();
            let rendered = render(&spec).expect("render");
            times.push(started.elapsed());
            size = rendered.mp4.len();
        }
        times.sort();
        let (best, median) = (times[0].as_secs_f64(), times[RUNS / 2].as_secs_f64());
        println!(
            "{:<12} {:>7} {:>9.3} {:>9.3} {:>9.1} {:>10.2} {:>10.2}",
            format!("{width}x{height}"),
            spec.frames,
            best,
            median,
            f64::from(spec.frames) / median,
            f64::from(SECONDS) / median,
            size as f64 / (1024.0 * 1024.0),
        );
    }
}
