// OpenSSL 3's libcrypto, the one libssh2 already links on Debian: digests for MusterBasics and
// the cluster CA's keys and certificates for MusterPKI, at no build cost.
#define OPENSSL_API_COMPAT 30000
#define OPENSSL_NO_DEPRECATED 1
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

// Swift cannot import function-like macros, nor OpenSSL's typed stacks reliably; these static
// inline shims stand in for the ones muster uses.

static inline long muster_bio_mem_data(BIO *bio, char **data) {
    return BIO_get_mem_data(bio, data);
}

static inline int muster_general_names_count(const GENERAL_NAMES *names) {
    return sk_GENERAL_NAME_num(names);
}

static inline const GENERAL_NAME *muster_general_names_at(const GENERAL_NAMES *names, int index) {
    return sk_GENERAL_NAME_value(names, index);
}

static inline void muster_general_names_free(GENERAL_NAMES *names) {
    GENERAL_NAMES_free(names);
}

/// GEN_DNS or GEN_IPADD and the name's bytes (IA5 text or 4/16 address bytes); other kinds: -1.
static inline int muster_general_name(const GENERAL_NAME *name, const unsigned char **bytes, int *length) {
    switch (name->type) {
    case GEN_DNS:
        *bytes = ASN1_STRING_get0_data(name->d.dNSName);
        *length = ASN1_STRING_length(name->d.dNSName);
        return GEN_DNS;
    case GEN_IPADD:
        *bytes = ASN1_STRING_get0_data(name->d.iPAddress);
        *length = ASN1_STRING_length(name->d.iPAddress);
        return GEN_IPADD;
    default:
        return -1;
    }
}
