//! The whole pipeline on real pictures: labels, counts, and invariance to the
//! ways a photo gets passed around (mirrored, scaled, gray, recompressed).

mod common;

use emoedge::{
    detect::iou,
    detect::FaceBox,
    heads::{Emotion, Gender},
    models::Precision,
    prior::ActionUnit,
    source::{decode_image, Frame},
};
use image::{DynamicImage, ImageFormat};

/// Where the astronaut's face is (drawn by hand on the 512×512 portrait:
/// hairline to chin, ear to ear).
fn true_face() -> FaceBox {
    FaceBox { x0: 175.0, y0: 65.0, x1: 275.0, y1: 180.0, score: 1.0, keypoints: [[0.0; 2]; 6] }
}

fn reencode(img: DynamicImage, format: ImageFormat) -> Frame {
    let mut bytes = Vec::new();
    match format {
        ImageFormat::Jpeg => {
            let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 30);
            img.to_rgb8().write_with_encoder(enc).unwrap();
        }
        _ => img.write_to(&mut std::io::Cursor::new(&mut bytes), format).unwrap(),
    }
    decode_image(&bytes, "reencoded").unwrap()
}

#[test]
fn astronaut_is_one_happy_woman_in_her_thirties() {
    let p = common::pipeline(Precision::Fp32);
    let a = common::analyze(&p, &common::frame("astronaut.png"));
    assert_eq!(a.faces.len(), 1, "expected exactly one face");
    let f = &a.faces[0];
    let overlap = iou(&f.bbox, &true_face());
    assert!(overlap > 0.6, "face box {:?} overlaps the true face by only {overlap:.2}", f.bbox);
    assert_eq!(f.landmarks.points.len(), 468);
    assert_eq!(f.emotions.top().0, Emotion::Happiness, "emotions {:?}", f.emotions);
    assert!(f.emotions.get(Emotion::Happiness) > 0.9);
    let (au12, au15) = (f.prior.intensity(ActionUnit::Au12), f.prior.intensity(ActionUnit::Au15));
    assert!(au12 > au15 + 0.3, "a smile should pull the lip corners up: AU12 {au12:.2}, AU15 {au15:.2}");
    // An adult woman; the portrait gives no exact age, so a broad adult band.
    assert!((25.0..50.0).contains(&f.attributes.age), "age {}", f.attributes.age);
    assert_eq!(f.attributes.gender, Gender::Female, "gender confidence {}", f.attributes.gender_confidence);
    // Upright, facing the camera.
    let pose = f.prior.pose;
    assert!(pose.yaw.abs() < 15.0 && pose.roll.abs() < 10.0, "pose {pose:?}");
}

#[test]
fn pictures_without_a_person_have_no_face() {
    let p = common::pipeline(Precision::Fp32);
    for name in ["chelsea.png", "coffee.png"] {
        let a = common::analyze(&p, &common::frame(name));
        assert!(a.faces.is_empty(), "{name}: found {} faces", a.faces.len());
    }
}

#[test]
fn the_same_face_survives_mirroring_scaling_gray_and_jpeg() {
    let p = common::pipeline(Precision::Fp32);
    let original = DynamicImage::ImageRgb8(common::frame("astronaut.png").image);
    let truth = true_face();
    let mirrored_truth = FaceBox { x0: 512.0 - truth.x1, x1: 512.0 - truth.x0, ..truth.clone() };
    let half_truth =
        FaceBox { x0: truth.x0 / 2.0, y0: truth.y0 / 2.0, x1: truth.x1 / 2.0, y1: truth.y1 / 2.0, ..truth.clone() };
    let variants: Vec<(&str, Frame, FaceBox)> = vec![
        ("mirrored", reencode(original.fliph(), ImageFormat::Png), mirrored_truth),
        (
            "half size",
            reencode(original.resize(256, 256, image::imageops::FilterType::Triangle), ImageFormat::Png),
            half_truth,
        ),
        ("grayscale", reencode(DynamicImage::ImageLuma8(original.to_luma8()), ImageFormat::Png), truth.clone()),
        ("jpeg q30", reencode(original.clone(), ImageFormat::Jpeg), truth.clone()),
    ];
    for (what, frame, expected) in variants {
        let a = common::analyze(&p, &frame);
        assert_eq!(a.faces.len(), 1, "{what}: {} faces", a.faces.len());
        let f = &a.faces[0];
        assert!(iou(&f.bbox, &expected) > 0.6, "{what}: box {:?} misses the face", f.bbox);
        assert_eq!(f.emotions.top().0, Emotion::Happiness, "{what}: emotions {:?}", f.emotions);
    }
}

#[test]
fn mirroring_flips_yaw_and_roll() {
    let p = common::pipeline(Precision::Fp32);
    let original = DynamicImage::ImageRgb8(common::frame("astronaut.png").image);
    let a = common::analyze(&p, &reencode(original.clone(), ImageFormat::Png));
    let m = common::analyze(&p, &reencode(original.fliph(), ImageFormat::Png));
    let (a, m) = (a.faces[0].prior.pose, m.faces[0].prior.pose);
    assert!((a.roll + m.roll).abs() < 2.0, "roll {} vs mirrored {}", a.roll, m.roll);
    assert!((a.yaw + m.yaw).abs() < 4.0, "yaw {} vs mirrored {}", a.yaw, m.yaw);
    assert!((a.pitch - m.pitch).abs() < 4.0, "pitch {} vs mirrored {}", a.pitch, m.pitch);
}

#[test]
fn a_tilted_head_reports_its_roll() {
    let p = common::pipeline(Precision::Fp32);
    let frame = common::frame("astronaut.png");
    let upright = common::analyze(&p, &frame).faces[0].prior.pose.roll;
    // Turn the picture 25° clockwise about the face centre.
    let angle = 25f32.to_radians();
    let rotated = imageproc_free_rotate(&frame.image, 225.0, 122.0, angle);
    let a = common::analyze(&p, &Frame::from_rgb(rotated));
    assert_eq!(a.faces.len(), 1);
    let roll = a.faces[0].prior.pose.roll;
    assert!((roll - upright - 25.0).abs() < 6.0, "roll went from {upright:.1}° to {roll:.1}°, expected +25°");
    assert_eq!(a.faces[0].emotions.top().0, Emotion::Happiness);
}

/// Rotates a picture clockwise by `angle` about (cx, cy) with the library's own sampler.
fn imageproc_free_rotate(img: &image::RgbImage, cx: f32, cy: f32, angle: f32) -> image::RgbImage {
    use emoedge::crop::{sample_rgb, Affine};
    let (w, h) = (img.width(), img.height());
    // Output pixel (u, v) reads the source rotated back by −angle about the centre.
    let (s, c) = (-angle).sin_cos();
    let map = Affine { a: c, b: -s, c: s, d: c, tx: cx - c * cx + s * cy, ty: cy - s * cx - c * cy };
    let px = sample_rgb(img, &map, w, h);
    image::RgbImage::from_fn(w, h, |x, y| {
        let p = px[(y * w + x) as usize];
        image::Rgb([p[0] as u8, p[1] as u8, p[2] as u8])
    })
}

#[test]
fn int8_and_fp16_agree_with_fp32_on_the_label_of_every_test_picture() {
    let fp32 = common::pipeline(Precision::Fp32);
    let original = DynamicImage::ImageRgb8(common::frame("astronaut.png").image);
    let pictures = [
        common::frame("astronaut.png"),
        reencode(original.fliph(), ImageFormat::Png),
        reencode(DynamicImage::ImageLuma8(original.to_luma8()), ImageFormat::Png),
        reencode(original, ImageFormat::Jpeg),
    ];
    for precision in [Precision::Int8, Precision::Fp16] {
        let other = common::pipeline(precision);
        for (i, frame) in pictures.iter().enumerate() {
            let a = common::analyze(&fp32, frame);
            let b = common::analyze(&other, frame);
            assert_eq!(a.faces.len(), b.faces.len(), "picture {i}: face count differs at {precision}");
            for (fa, fb) in a.faces.iter().zip(&b.faces) {
                assert_eq!(fa.emotions.top().0, fb.emotions.top().0, "picture {i}: top-1 differs at {precision}");
            }
        }
    }
}

#[test]
fn json_has_the_rep155_fields() {
    let p = common::pipeline(Precision::Fp32);
    let a = common::analyze(&p, &common::frame("astronaut.png"));
    let j = a.to_json();
    let f = &j["faces"][0];
    for key in ["id", "roi", "expression", "emotions", "action_units", "soft_biometrics", "landmarks", "timings_ms"] {
        assert!(!f[key].is_null(), "missing {key}");
    }
    assert_eq!(f["expression"]["expression"], "happy");
    assert_eq!(f["emotions"].as_object().unwrap().len(), 7);
    assert_eq!(
        f["action_units"]["aus"].as_array().unwrap().len(),
        f["action_units"]["intensities"].as_array().unwrap().len()
    );
    let roi = &f["roi"];
    for k in ["xmin", "ymin", "xmax", "ymax"] {
        let v = roi[k].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "roi {k} = {v}");
    }
    assert!(f["soft_biometrics"].get("race").is_none(), "race must be off by default");
}

#[test]
fn every_face_in_a_picture_is_found() {
    // Two real faces side by side: the portrait and its mirror image.
    let p = common::pipeline(Precision::Fp32);
    let one = common::frame("astronaut.png").image;
    let mirrored = image::imageops::flip_horizontal(&one);
    let mut both = image::RgbImage::new(1024, 512);
    image::imageops::replace(&mut both, &one, 0, 0);
    image::imageops::replace(&mut both, &mirrored, 512, 0);
    let a = common::analyze(&p, &Frame::from_rgb(both));
    assert_eq!(a.faces.len(), 2, "expected two faces");
    let mut centres: Vec<f32> = a.faces.iter().map(|f| f.bbox.center().0).collect();
    centres.sort_by(f32::total_cmp);
    assert!(centres[0] < 512.0 && centres[1] > 512.0, "one face per half: {centres:?}");
    assert!(a.faces.iter().all(|f| f.emotions.top().0 == Emotion::Happiness));
}

#[test]
fn exif_orientation_is_applied() {
    // A camera that stores the picture sideways and says so in EXIF
    // (orientation 6: rotate 90° clockwise to view).
    let upright = common::frame("astronaut.png").image;
    let sideways = image::imageops::rotate270(&upright);
    let mut jpeg = Vec::new();
    let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90);
    sideways.write_with_encoder(enc).unwrap();
    let mut tiff = b"II\x2a\x00\x08\x00\x00\x00".to_vec();
    tiff.extend([1, 0]); // one IFD entry
    tiff.extend([0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0]); // Orientation, SHORT, 1, value 6
    tiff.extend([0, 0, 0, 0]); // no next IFD
    let mut app1 = b"Exif\x00\x00".to_vec();
    app1.extend(tiff);
    let mut with_exif = vec![0xFF, 0xD8, 0xFF, 0xE1];
    with_exif.extend(((app1.len() + 2) as u16).to_be_bytes());
    with_exif.extend(app1);
    with_exif.extend(&jpeg[2..]);

    let frame = decode_image(&with_exif, "exif.jpg").unwrap();
    assert_eq!((frame.width(), frame.height()), (512, 512));
    let a = common::analyze(&common::pipeline(Precision::Fp32), &frame);
    assert_eq!(a.faces.len(), 1);
    assert!(iou(&a.faces[0].bbox, &true_face()) > 0.6, "box {:?}: the picture was not turned upright", a.faces[0].bbox);
    assert!(a.faces[0].prior.pose.roll.abs() < 10.0);
}
