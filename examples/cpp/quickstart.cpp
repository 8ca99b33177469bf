// libbill C++ quickstart: sign in, show the (masked) session id, make one
// call, sign out. Uses the header-only wrapper include/bill.hpp.
//
// Credentials come from the environment:
//   BILL_USER, BILL_PASSWORD, BILL_ORG_ID, BILL_DEV_KEY   (required)
//   BILL_API=2|3 (default 3), BILL_V2_BASE_URL / BILL_V3_BASE_URL or
//   BILL_BASE_URL, BILL_SANDBOX=1, BILL_CA_FILE
// Against the local emulator: scripts/with-emulator.sh -- build/quickstart_cpp
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <string_view>

#include "bill.hpp"

namespace {

// An environment variable, or "" when unset.
std::string_view env(const char *name) {
    const char *v = std::getenv(name);
    return v ? std::string_view(v) : std::string_view();
}

// The required secret `name`, passed straight from the environment to libbill.
std::string_view required(const char *name) {
    std::string_view v = env(name);
    if (v.empty()) throw std::runtime_error(std::string("set ") + name);
    return v;
}

// Shows only the first 4 characters: a session id is a secret.
std::string masked_id(const bill::Session &s) {
    char id[256];
    std::size_t len = s.id_into(id, sizeof id);
    std::string shown = std::string(id, len < 4 ? len : 4) + "... (" + std::to_string(len) + " chars)";
    bill::wipe(id, sizeof id);
    return shown;
}

}  // namespace

int main() {
    const bool quiet = std::getenv("BILL_QUICKSTART_QUIET") != nullptr;
    std::ostream &out = std::cout;
    try {
        const bool v2 = env("BILL_API") == "2";
        if (!quiet) out << "libbill " << bill::version() << " (C++), BILL API v" << (v2 ? 2 : 3) << "\n";

        bill::Options opts;
        opts.user_name(required("BILL_USER"))
            .password(required("BILL_PASSWORD"))
            .dev_key(required("BILL_DEV_KEY"))
            .org_id(required("BILL_ORG_ID"))
            .api_version(v2 ? BILL_API_V2 : BILL_API_V3);
        if (!env("BILL_SANDBOX").empty()) opts.environment(BILL_ENV_SANDBOX);
        std::string_view base = env(v2 ? "BILL_V2_BASE_URL" : "BILL_V3_BASE_URL");
        if (base.empty()) base = env("BILL_BASE_URL");
        if (!base.empty()) opts.base_url(base);
        if (!env("BILL_CA_FILE").empty()) opts.ca_file(env("BILL_CA_FILE"));

        bill::Session session(opts);
        if (!quiet) out << "signed in: session " << masked_id(session) << "\n";

        bill::Response r = v2 ? session.call("POST", "List/Vendor", "{}") : session.call("GET", "vendors");
        if (!quiet) out << "call: HTTP " << r.http_status << ", " << r.body.size() << " bytes\n";

        session.logout();
        if (!quiet) out << "signed out\n";
        return 0;
    } catch (const bill::Error &e) {
        std::cerr << "libbill error: " << e.what();
        if (!e.code().empty()) std::cerr << " [code " << e.code() << "]";
        if (e.retry_after().count() > 0) std::cerr << " [retry after " << e.retry_after().count() << " ms]";
        std::cerr << "\n";
        return 1;
    } catch (const std::exception &e) {
        std::cerr << e.what() << "\n";
        return 2;
    }
}
