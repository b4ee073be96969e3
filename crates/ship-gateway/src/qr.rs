//! `qr` (this gateway's SHIP installation QR code) and `pair --qr` (pairing from a scanned one).

use std::path::PathBuf;

use qrcode::QrCode;
use qrcode::render::{svg, unicode::Dense1x2};
use ship_hub::protocol::PinRequirement;
use ship_hub::qr::{QrError, QrPin, ShipQr};
use ship_hub::{ShipId, Ski};

use crate::cli::{QrArgs, RunArgs};
use crate::commands;
use crate::data_dir::{self, DataDir};
use crate::device::{DEVICE_CATEGORIES, default_ship_id};
use crate::error::GatewayError;
use crate::settings::{Device, Settings};

/// `qr`: prints the code on the terminal (or writes it as SVG) and its text.
pub(crate) fn show(
    data_dir: Option<PathBuf>,
    args: QrArgs,
    json: bool,
) -> Result<(), GatewayError> {
    let QrArgs {
        svg: svg_path,
        invert,
        config,
        name,
        brand,
        model,
        serial,
        device_type,
        ship_id,
    } = args;
    // The same resolution as `run`, so the code shows what the gateway announces.
    let run_args = RunArgs {
        config,
        name,
        brand,
        model,
        serial,
        device_type,
        ship_id,
        ..RunArgs::default()
    };
    let settings = Settings::resolve(run_args, data_dir, json)?;
    let dir = DataDir::open(settings.data_dir.clone(), true)?;
    let device = &settings.device;
    let cn = device.name.as_deref().unwrap_or("ship-gateway");
    let identity = dir.identity(&data_dir::subject(cn, &device.brand))?;
    let ski = identity.ski();
    // Stored at first use exactly as `run` stores it: the code must carry the SHIP ID peers see.
    let ship_id = dir.ship_id(device.ship_id.as_ref(), || default_ship_id(ski))?;
    let text = code_of(ski, ship_id, device, &settings.pin_requirement)
        .map_err(|e| GatewayError::Setting(format!("this gateway's QR code: {e}")))?
        .to_string();
    let code = QrCode::new(text.as_bytes())
        .map_err(|e| GatewayError::Setting(format!("cannot encode the QR code: {e}")))?;
    if let Some(path) = &svg_path {
        std::fs::write(path, svg_of(&code)).map_err(|source| GatewayError::Io {
            what: format!("writing {}", path.display()),
            source,
        })?;
    }
    if json {
        println!(
            "{}",
            serde_json::json!({
                "text": text,
                "svg": svg_path.as_ref().map(|p| p.display().to_string()),
            })
        );
        return Ok(());
    }
    match &svg_path {
        Some(path) => println!("wrote {}", path.display()),
        None => println!("{}\n", terminal_picture(&code, invert)),
    }
    println!("{text}");
    Ok(())
}

/// The code as an SVG image (dark modules on white, with the quiet zone).
pub(crate) fn svg_of(code: &QrCode) -> String {
    code.render::<svg::Color<'_>>()
        .min_dimensions(256, 256)
        .quiet_zone(true)
        .build()
}

/// The code drawn with Unicode half blocks, two modules a character, with the quiet zone.
/// Not inverted, the light modules are blocks: a terminal draws blocks in its (light) text
/// colour on its (dark) background, so the code reads dark on light as a scanner expects.
pub(crate) fn terminal_picture(code: &QrCode, invert: bool) -> String {
    let (ink, paper) = if invert {
        (Dense1x2::Dark, Dense1x2::Light)
    } else {
        (Dense1x2::Light, Dense1x2::Dark)
    };
    code.render::<Dense1x2>()
        .dark_color(ink)
        .light_color(paper)
        .quiet_zone(true)
        .build()
}

/// This gateway's code: SKI, SHIP ID, the PIN it requires (if `pin` is set: the SHIP QR format
/// then requires it), and what it announces over mDNS.
pub(crate) fn code_of(
    ski: Ski,
    ship_id: ShipId,
    device: &Device,
    pin: &PinRequirement,
) -> Result<ShipQr, QrError> {
    let mut code = ShipQr::new(ski, ship_id)?;
    if let PinRequirement::Required(pin) | PinRequirement::Optional(pin) = pin {
        code = code.with_pin(QrPin::new(pin.reveal()).map_err(QrError::Pin)?);
    }
    let mut code = code
        .with_brand(&device.brand)?
        .with_device_type(&device.device_type)?
        .with_model(&device.model)?
        .with_categories(DEVICE_CATEGORIES.to_vec())?;
    if let Some(serial) = &device.serial {
        code = code.with_serial(serial)?;
    }
    Ok(code)
}

/// `pair --qr TEXT`: pairs the SKI of a scanned code and stores its SHIP ID; the name is
/// `--name`, else the code's brand and model.
pub(crate) fn pair(
    data_dir: Option<PathBuf>,
    text: &str,
    name: Option<String>,
    address: Option<String>,
) -> Result<(), GatewayError> {
    let read;
    let text = if text == "-" {
        read = read_stdin()?;
        read.as_str()
    } else {
        text
    };
    // The error names the field, never the text: a code may carry a PIN.
    let code: ShipQr = text
        .parse()
        .map_err(|e: QrError| GatewayError::Setting(format!("invalid --qr: {e}")))?;
    let name = name.or_else(|| {
        let parts: Vec<&str> = [code.brand(), code.model()].into_iter().flatten().collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    });
    // The code's PIN (if any) is stored with the pairing and sent when the device asks for it.
    commands::pair(
        data_dir,
        code.ski(),
        Some(code.ship_id().clone()),
        name,
        address,
        code.pin().map(|pin| pin.expose().to_owned()),
    )
}

/// `--qr -`: the code's text from standard input (a scanner that types, or a pipe), which keeps
/// a PIN out of the shell history and the process list. At most one code's worth is read.
fn read_stdin() -> Result<String, GatewayError> {
    use std::io::Read;
    let limit = ShipQr::MAX_TEXT_LEN + 2; // the text and a line end
    let mut bytes = Vec::new();
    std::io::stdin()
        .lock()
        .take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| GatewayError::Io {
            what: "reading the QR code from stdin".into(),
            source,
        })?;
    if bytes.len() > limit {
        return Err(GatewayError::Setting(format!(
            "invalid --qr: stdin holds more than one QR code ({limit} bytes at most)"
        )));
    }
    String::from_utf8(bytes)
        .map_err(|_| GatewayError::Setting("invalid --qr: stdin is not UTF-8".into()))
}
