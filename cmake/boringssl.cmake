# BoringSSL from Debian's android-libboringssl-dev, as one INTERFACE target
# (popgate_boringssl) that every layer may link: auth/ (CRYPTO_memcmp),
# pop3/ (strict base64), tls/, bench/loadgen. Defined here, before the layer
# folders are added, because the lowest user (auth/) comes before tls/.
#
# Its headers live under /usr/include/android so that they can sit in front
# of the system OpenSSL headers in /usr/include; nothing in popgate links the
# system libssl, so the two never meet in one binary. SYSTEM: its headers trip
# our -Werror flags (-Wignored-qualifiers in stack.h); -isystem still precedes
# /usr/include.
set(POPGATE_BORINGSSL_INCLUDE /usr/include/android)
set(POPGATE_BORINGSSL_LIBDIR /usr/lib/x86_64-linux-gnu/android)
if(NOT EXISTS ${POPGATE_BORINGSSL_INCLUDE}/openssl/is_boringssl.h)
  message(FATAL_ERROR
    "BoringSSL headers not found: install android-libboringssl-dev")
endif()
add_library(popgate_boringssl INTERFACE)
target_include_directories(popgate_boringssl SYSTEM BEFORE
  INTERFACE ${POPGATE_BORINGSSL_INCLUDE})
target_link_libraries(popgate_boringssl INTERFACE
  ${POPGATE_BORINGSSL_LIBDIR}/libssl.so
  ${POPGATE_BORINGSSL_LIBDIR}/libcrypto.so)
# The libraries are not in the loader's default path: every binary that links
# them carries an rpath (build tree and installed).
target_link_options(popgate_boringssl INTERFACE
  "LINKER:-rpath,${POPGATE_BORINGSSL_LIBDIR}")
