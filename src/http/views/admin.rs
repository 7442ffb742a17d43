//! Views of the instance console (/admin).
