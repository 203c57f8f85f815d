//! Declarative macros for the ABI's tables, so each enum and each signature table is written
//! once as data.

/// Defines an ABI enum: `#[repr(u32)]`, with `ALL`, `from_u32` and `name`.
macro_rules! abi_enum_define {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $value:expr => $text:expr,)+ }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u32)]
        pub enum $name {
            $($(#[$vmeta])* $variant = $value,)+
        }

        impl $name {
            /// Every value, in numeric order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// Decodes the wasm value; `None` for a number the ABI does not define.
            pub const fn from_u32(value: u32) -> Option<Self> {
                match value {
                    $($value => Some($name::$variant),)+
                    _ => None,
                }
            }

            /// The name Envoy uses for the value.
            pub const fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }
    };
}

/// Declares an ABI enum (see `abi_enum_define!`) that displays as its Envoy name;
/// `@no_display` leaves `Display` to the caller.
macro_rules! abi_enum {
    (@no_display $($body:tt)*) => {
        abi_enum_define! { $($body)* }
    };
    ($(#[$meta:meta])* $name:ident $body:tt) => {
        abi_enum_define! { $(#[$meta])* $name $body }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

/// Declares a table of wasm functions: an enum with `ALL`, the function `name` and its
/// `signature`.
macro_rules! signature_table {
    ($(#[$meta:meta])* $enum:ident { $($variant:ident => $name:literal, $params:expr, $results:expr;)+ }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $enum {
            $(
                #[doc = concat!("`", $name, "`")]
                $variant,
            )+
        }

        impl $enum {
            /// Every function of the table, in table order.
            pub const ALL: &'static [$enum] = &[$($enum::$variant,)+];

            /// The function name.
            pub const fn name(self) -> &'static str {
                match self { $($enum::$variant => $name,)+ }
            }

            /// The wasm signature.
            pub const fn signature(self) -> $crate::Signature {
                match self {
                    $($enum::$variant => $crate::Signature { params: $params, results: $results },)+
                }
            }
        }
    };
}
