#pragma once
// Appends RESP2 replies to an output buffer.

#include <cstdint>
#include <string>
#include <string_view>

namespace keyward::resp {

void SimpleString(std::string* out, std::string_view s);
void Error(std::string* out, std::string_view message);  // message without the leading '-'
void Integer(std::string* out, int64_t v);
void Bulk(std::string* out, std::string_view s);
void NullBulk(std::string* out);
void ArrayHeader(std::string* out, size_t n);

}  // namespace keyward::resp
