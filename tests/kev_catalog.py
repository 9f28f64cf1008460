"""A CISA KEV catalog the tests write where they need one: five real entries, CC0 (see fixtures/security/NOTICE.md).

The catalog's shape is CISA's own (``title``, ``catalogVersion``, ``vulnerabilities`` …), so the loader reads it
exactly as it reads the catalog CISA publishes.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

KEV_CATALOG: dict[str, Any] = {
    "title": "CISA Catalog of Known Exploited Vulnerabilities",
    "catalogVersion": "2025.08.25",
    "dateReleased": "2025-08-25T17:04:19.9796Z",
    "count": 5,
    "vulnerabilities": [
        {
            "cveID": "CVE-2025-48384",
            "vendorProject": "Git",
            "product": "Git",
            "vulnerabilityName": "Git Link Following Vulnerability",
            "dateAdded": "2025-08-25",
            "shortDescription": "Git contains a link following vulnerability that stems from Git’s "
            "inconsistent handling of carriage return characters in configuration "
            "files.",
            "requiredAction": "Apply mitigations per vendor instructions, follow applicable BOD 22-01 "
            "guidance for cloud services, or discontinue use of the product if "
            "mitigations are unavailable.",
            "dueDate": "2025-09-15",
            "knownRansomwareCampaignUse": "Unknown",
            "notes": "This vulnerability affects a common open-source component, third-party library, or "
            "a protocol used by different products. For more information, please see: "
            "https://github.com/git/git/security/advisories/GHSA-vwqx-4fm8-6qc9 ; "
            "https://access.redhat.com/errata/RHSA-2025:13933 ; "
            "https://alas.aws.amazon.com/AL2/ALAS2-2025-2941.html ; "
            "https://linux.oracle.com/errata/ELSA-2025-11534.html ; "
            "https://msrc.microsoft.com/update-guide/vulnerability/CVE-2025-48384 ; "
            "https://nvd.nist.gov/vuln/detail/CVE-2025-48384",
            "cwes": ["CWE-59", "CWE-436"],
        },
        {
            "cveID": "CVE-2021-45046",
            "vendorProject": "Apache",
            "product": "Log4j2",
            "vulnerabilityName": "Apache Log4j2 Deserialization of Untrusted Data Vulnerability",
            "dateAdded": "2023-05-01",
            "shortDescription": "Apache Log4j2 contains a deserialization of untrusted data "
            "vulnerability due to the incomplete fix of CVE-2021-44228, where the "
            "Thread Context Lookup Pattern is vulnerable to remote code execution in "
            "certain non-default configurations.",
            "requiredAction": "Apply updates per vendor instructions.",
            "dueDate": "2023-05-22",
            "knownRansomwareCampaignUse": "Known",
            "notes": "https://logging.apache.org/log4j/2.x/security.html; "
            "https://nvd.nist.gov/vuln/detail/CVE-2021-45046",
            "cwes": ["CWE-917"],
        },
        {
            "cveID": "CVE-2017-12617",
            "vendorProject": "Apache",
            "product": "Tomcat",
            "vulnerabilityName": "Apache Tomcat Remote Code Execution Vulnerability",
            "dateAdded": "2022-03-25",
            "shortDescription": "When running Apache Tomcat, it is possible to upload a JSP file to the "
            "server via a specially crafted request. This JSP could then be "
            "requested and any code it contained would be executed by the server.",
            "requiredAction": "Apply updates per vendor instructions.",
            "dueDate": "2022-04-15",
            "knownRansomwareCampaignUse": "Unknown",
            "notes": "https://nvd.nist.gov/vuln/detail/CVE-2017-12617",
            "cwes": ["CWE-434"],
        },
        {
            "cveID": "CVE-2017-12615",
            "vendorProject": "Apache",
            "product": "Tomcat",
            "vulnerabilityName": "Apache Tomcat on Windows Remote Code Execution Vulnerability",
            "dateAdded": "2022-03-25",
            "shortDescription": "When running Apache Tomcat on Windows with HTTP PUTs enabled, it is "
            "possible to upload a JSP file to the server via a specially crafted "
            "request. This JSP could then be requested and any code it contained "
            "would be executed by the server.",
            "requiredAction": "Apply updates per vendor instructions.",
            "dueDate": "2022-04-15",
            "knownRansomwareCampaignUse": "Known",
            "notes": "https://nvd.nist.gov/vuln/detail/CVE-2017-12615",
            "cwes": ["CWE-434"],
        },
        {
            "cveID": "CVE-2021-44228",
            "vendorProject": "Apache",
            "product": "Log4j2",
            "vulnerabilityName": "Apache Log4j2 Remote Code Execution Vulnerability",
            "dateAdded": "2021-12-10",
            "shortDescription": "Apache Log4j2 contains a vulnerability where JNDI features do not "
            "protect against attacker-controlled JNDI-related endpoints, allowing "
            "for remote code execution.",
            "requiredAction": "For all affected software assets for which updates exist, the only "
            "acceptable remediation actions are: 1) Apply updates; OR 2) remove "
            "affected assets from agency networks. Temporary mitigations using one of "
            "the measures provided at "
            "https://www.cisa.gov/uscert/ed-22-02-apache-log4j-recommended-mitigation-measures "
            "are only acceptable until updates are available.",
            "dueDate": "2021-12-24",
            "knownRansomwareCampaignUse": "Known",
            "notes": "https://nvd.nist.gov/vuln/detail/CVE-2021-44228",
            "cwes": ["CWE-20", "CWE-400", "CWE-502"],
        },
    ],
}


def kev_catalog() -> dict[str, Any]:
    """A fresh copy of the catalog, to change at will."""
    return copy.deepcopy(KEV_CATALOG)


def write_kev_catalog(path: Path, catalog: dict[str, Any] | None = None) -> Path:
    """Write the catalog (or ``catalog``) as CISA publishes it: indented JSON."""
    path.write_text(json.dumps(catalog or KEV_CATALOG, indent=4, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
