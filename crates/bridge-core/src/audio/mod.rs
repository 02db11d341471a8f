//! G.711 codecs, resampling and format conversion (in progress).
