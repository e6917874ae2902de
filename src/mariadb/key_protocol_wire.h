/* The wire format between keyward's MariadbKeyService and the keyward_key_management plugin
 * inside mariadbd. Plain C so the plugin (C, built against libmariadbd-dev) and keyward (C++)
 * share one definition.
 *
 * One request per connection over a SOCK_STREAM Unix socket; all integers little-endian.
 *   Request, exactly KW_MK_REQUEST_SIZE (16) bytes:
 *     0  4  magic "KWK1"
 *     4  4  u32 op: KW_MK_OP_LATEST (latest key version) or KW_MK_OP_GET_KEY
 *     8  4  u32 MariaDB key id (any value; each id gets its own derived key)
 *     12 4  u32 MariaDB key version (GET_KEY only; 0 for LATEST)
 *   Response, KW_MK_RESPONSE_HEADER_SIZE (16) bytes then L key bytes:
 *     0  4  magic "KWR1"
 *     4  4  u32 status (KW_MK_STATUS_*)
 *     8  4  u32 latest MariaDB key version (0 on error)
 *     12 4  u32 L: key length, KW_MK_KEY_SIZE for a GET_KEY answered OK, otherwise 0
 *     16 L  key bytes
 * MariaDB key version = 2 x keyward data-key id (KW_MK_VERSION_OF_DATA_KEY): InnoDB re-encrypts
 * a page only when its version + innodb_encryption_rotate_key_age < the latest, and 1 is the
 * smallest age that keeps background rotation on, so with consecutive versions a page would stay
 * on the previous data key after one keyward rotation. Doubling makes each rotation jump two
 * versions and move every page. Odd versions are never handed out (UNKNOWN_VERSION).
 * Both sides check every length: the server reads exactly 16 bytes and ignores nothing (a
 * malformed request gets KW_MK_STATUS_BAD_REQUEST); the client refuses L > KW_MK_KEY_SIZE or a
 * short read. A peer the server does not allow gets the connection closed without any answer.
 */
#ifndef KEYWARD_MARIADB_KEY_PROTOCOL_WIRE_H_
#define KEYWARD_MARIADB_KEY_PROTOCOL_WIRE_H_

#define KW_MK_REQUEST_MAGIC "KWK1"
#define KW_MK_RESPONSE_MAGIC "KWR1"
#define KW_MK_MAGIC_SIZE 4
#define KW_MK_REQUEST_SIZE 16
#define KW_MK_RESPONSE_HEADER_SIZE 16
#define KW_MK_KEY_SIZE 32

#define KW_MK_VERSION_OF_DATA_KEY(id) ((id)*2u)

#define KW_MK_OP_LATEST 1u
#define KW_MK_OP_GET_KEY 2u

#define KW_MK_STATUS_OK 0u
/* The dictionary holds no data key with that id. */
#define KW_MK_STATUS_UNKNOWN_VERSION 1u
#define KW_MK_STATUS_BAD_REQUEST 2u
/* keyward could not produce the key (derivation failed). */
#define KW_MK_STATUS_UNAVAILABLE 3u

#endif /* KEYWARD_MARIADB_KEY_PROTOCOL_WIRE_H_ */
