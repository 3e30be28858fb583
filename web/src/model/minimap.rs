//! The minimap: the whole board's frames drawn small in a corner, with the part in view outlined; a
//! click there brings that part of the board into view.

use super::{Rect, View};

/// The minimap's size on screen, in pixels.
pub const MINIMAP_SIZE: (f64, f64) = (200.0, 130.0);

/// Boards with at least this many blocks show the minimap from the start (smaller ones fit on screen;
/// the toolbar's "Map" button shows it anyway).
pub const MINIMAP_AUTO_BLOCKS: usize = 150;

/// How world coordinates map into the minimap: `map = (world - origin) * scale`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MiniMap {
    pub origin: (f64, f64),
    pub scale: f64,
}

impl MiniMap {
    /// Fits `content` (the board's bounds) into a `width` × `height` map with a margin, centred.
    pub fn fit(content: &Rect, width: f64, height: f64) -> MiniMap {
        let margin = 8.0;
        let scale = ((width - 2.0 * margin) / content.width.max(1.0))
            .min((height - 2.0 * margin) / content.height.max(1.0));
        MiniMap {
            origin: (
                content.x - (width / scale - content.width) / 2.0,
                content.y - (height / scale - content.height) / 2.0,
            ),
            scale,
        }
    }

    /// A world rectangle in minimap pixels.
    pub fn to_map(&self, rect: &Rect) -> Rect {
        Rect {
            x: (rect.x - self.origin.0) * self.scale,
            y: (rect.y - self.origin.1) * self.scale,
            width: rect.width * self.scale,
            height: rect.height * self.scale,
        }
    }

    /// The world point under minimap pixel (`x`, `y`).
    pub fn to_world(&self, x: f64, y: f64) -> (f64, f64) {
        (
            x / self.scale + self.origin.0,
            y / self.scale + self.origin.1,
        )
    }
}

/// The view (same zoom) that puts world point `(x, y)` in the middle of a `width` × `height` canvas.
pub fn centred_on(view: &View, (x, y): (f64, f64), width: f64, height: f64) -> View {
    View {
        pan_x: width / 2.0 - x * view.zoom,
        pan_y: height / 2.0 - y * view.zoom,
        zoom: view.zoom,
    }
}
