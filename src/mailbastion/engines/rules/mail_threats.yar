/*
 * mailbastion's own YARA rules for mail-borne threats. Each rule sees the raw message and every
 * decoded part (attachments, archive members). meta.kind: "malware" refuses the message,
 * "suspicious" adds to the score. Tests: tests/engines/test_yara.py builds a sample for each rule.
 */

rule MB_EICAR_Test_File
{
    meta:
        kind = "malware"
        description = "The EICAR anti-virus test file: proves this engine sees every part"
    strings:
        $eicar = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
    condition:
        $eicar
}

rule MB_Exe_Disguised_As_Document
{
    meta:
        kind = "malware"
        description = "A MIME part named like a document or image whose base64 content is a Windows program"
    strings:
        // name="invoice.pdf" ... blank line ... TVqQ / TVpQ / TVoA (base64 of "MZ")
        $named = /name\*?=\s*"?[^"\r\n;]{0,200}\.(pdf|docx?|xlsx?|pptx?|rtf|txt|jpe?g|png|gif|csv|odt)"?[^\r\n]*\r?\n([ \t]*[^\r\n]+\r?\n){0,8}\r?\n[ \t]*TV(qQ|pQ|oA|qA|ro|pB)/ nocase
    condition:
        $named
}

rule MB_PE_With_Document_Icon_Name
{
    meta:
        kind = "malware"
        description = "A Windows program whose version resource claims to be a PDF or Office document"
    strings:
        $pdf = "A\x00d\x00o\x00b\x00e\x00 \x00P\x00D\x00F\x00" 
        $doc = "M\x00i\x00c\x00r\x00o\x00s\x00o\x00f\x00t\x00 \x00W\x00o\x00r\x00d\x00 \x00D\x00o\x00c\x00"
        $orig = "O\x00r\x00i\x00g\x00i\x00n\x00a\x00l\x00F\x00i\x00l\x00e\x00n\x00a\x00m\x00e\x00"
        $dot1 = ".pdf\x00" wide
        $dot2 = ".doc\x00" wide
        $dot3 = ".docx\x00" wide
    condition:
        uint16(0) == 0x5A4D and uint32(uint32(0x3C)) == 0x00004550 and $orig and (any of ($dot*) or $pdf or $doc)
}

rule MB_HTML_Smuggling
{
    meta:
        kind = "malware"
        description = "HTML that assembles a file in the browser and saves it (HTML smuggling)"
    strings:
        $blob1 = "new Blob(" nocase
        $blob2 = "msSaveOrOpenBlob" nocase
        $url = "createObjectURL" nocase
        $dl1 = ".download" nocase
        $dl2 = "setAttribute(\"download\"" nocase
        $dl3 = "setAttribute('download'" nocase
        $dec1 = "atob(" nocase
        $dec2 = "Uint8Array" nocase
        $dec3 = "charCodeAt" nocase
    condition:
        ($blob2 or ($blob1 and $url and any of ($dl*))) and any of ($dec*)
}

rule MB_Shortcut_Dropper
{
    meta:
        kind = "malware"
        description = "A Windows shortcut (.lnk) that starts a script host or a downloader"
    strings:
        $ps = "powershell" nocase wide ascii
        $cmd = "cmd.exe" nocase wide ascii
        $mshta = "mshta" nocase wide ascii
        $wscript = "wscript" nocase wide ascii
        $cscript = "cscript" nocase wide ascii
        $rundll = "rundll32" nocase wide ascii
        $regsvr = "regsvr32" nocase wide ascii
        $curl = "curl" nocase wide ascii
        $bits = "bitsadmin" nocase wide ascii
        $certutil = "certutil" nocase wide ascii
    condition:
        uint32(0) == 0x0000004C and uint32(4) == 0x00021401 and any of them
}

rule MB_Script_Dropper
{
    meta:
        kind = "malware"
        description = "A JScript/VBScript/batch file that downloads and runs something"
    strings:
        $shell1 = "WScript.Shell" nocase
        $shell2 = "Shell.Application" nocase
        $shell3 = "ShellExecute" nocase
        $run1 = ".Run" nocase
        $run2 = ".Exec" nocase
        $run3 = "ShellExecute" nocase
        $net1 = "MSXML2.XMLHTTP" nocase
        $net2 = "WinHttp.WinHttpRequest" nocase
        $net3 = "ADODB.Stream" nocase
        $net4 = "Net.WebClient" nocase
        $net5 = "Invoke-WebRequest" nocase
        $net6 = "DownloadFile" nocase
        $net7 = "bitsadmin /transfer" nocase
        $net8 = "certutil -urlcache" nocase
    condition:
        filesize < 5MB and any of ($shell*) and any of ($run*) and any of ($net*)
}

rule MB_PowerShell_Encoded_Command
{
    meta:
        kind = "malware"
        description = "PowerShell started with a base64-encoded command"
    strings:
        // Fixed strings only: a regex starting with \s or "-e" has no usable atom and slows every scan.
        $ps = "powershell" nocase wide ascii
        $enc1 = " -enc " nocase wide ascii
        $enc2 = " -encodedcommand " nocase wide ascii
        $enc3 = " -ec " nocase wide ascii
        $enc4 = " -e JAB" wide ascii
        $enc5 = " -e SQBFAFgA" wide ascii
        $hid1 = "-w hidden" nocase wide ascii
        $hid2 = "-windowstyle hidden" nocase wide ascii
        $byp1 = "-ep bypass" nocase wide ascii
        $byp2 = "-exec bypass" nocase wide ascii
        $byp3 = "-executionpolicy bypass" nocase wide ascii
    condition:
        $ps and (any of ($enc*) or (any of ($hid*) and any of ($byp*)))
}

rule MB_Disk_Image_With_Shortcut_Or_Program
{
    meta:
        kind = "malware"
        description = "An ISO/IMG disk image carrying a shortcut, script or program (Mark-of-the-Web bypass)"
    strings:
        $cd001 = "CD001"
        $lnk = { 4C 00 00 00 01 14 02 00 }
        $ext1 = ".LNK;1" nocase
        $ext2 = ".EXE;1" nocase
        $ext3 = ".JS;1" nocase
        $ext4 = ".VBS;1" nocase
        $ext5 = ".BAT;1" nocase
        $ext6 = ".HTA;1" nocase
        $ext7 = ".DLL;1" nocase
    condition:
        ($cd001 at 0x8001 or $cd001 at 0x8801 or $cd001 at 0x9001) and ($lnk or any of ($ext*))
}

rule MB_MSDT_Follina
{
    meta:
        kind = "malware"
        description = "A document or HTML calling the ms-msdt: protocol (CVE-2022-30190)"
    strings:
        $a = "ms-msdt:" nocase ascii wide
        $b = "IT_BrowseForFile" nocase ascii wide
    condition:
        $a and $b
}

rule MB_PDF_Launch_Action
{
    meta:
        kind = "malware"
        description = "A PDF whose Launch action runs a program"
    strings:
        $launch = "/Launch" ascii
        $cmd1 = "cmd.exe" nocase
        $cmd2 = "powershell" nocase
        $cmd3 = "mshta" nocase
    condition:
        uint32(0) == 0x46445025 and $launch and any of ($cmd*)
}

rule MB_OneNote_Embedded_Script
{
    meta:
        kind = "malware"
        description = "A OneNote section carrying an embedded script or program"
    strings:
        $ext1 = ".hta" nocase wide ascii
        $ext2 = ".vbs" nocase wide ascii
        $ext3 = ".bat" nocase wide ascii
        $ext4 = ".cmd" nocase wide ascii
        $ext5 = ".wsf" nocase wide ascii
        $mz = { 4D 5A 90 00 }
        $embedded = { E7 16 E3 BD 65 26 11 45 A4 C4 8D 4D 0B 7A 9E AC }
    condition:
        uint32(0) == 0x7B5C52E4 and $embedded and (any of ($ext*) or $mz)
}

rule MB_RTF_Equation_Editor_Exploit
{
    meta:
        kind = "malware"
        description = "An RTF embedding an Equation Editor object (CVE-2017-11882 and kin)"
    strings:
        $rtf = "{\\rt"
        $obj = "\\objdata" nocase
        $eq1 = "Equation.3" nocase
        $eq2 = "4571756174696f6e2e33" nocase  // "Equation.3" in hex, as objdata carries it
        $eq3 = "0002CE02-0000-0000-C000-000000000046" nocase
    condition:
        $rtf at 0 and $obj and any of ($eq*)
}

rule MB_Suspicious_Bidi_Filename
{
    meta:
        kind = "suspicious"
        description = "A MIME file name carrying a right-to-left override (U+202E) to hide its extension"
    strings:
        $rtlo_raw = { E2 80 AE }
        $rtlo_q = "=E2=80=AE" nocase
        $rtlo_pct = "%E2%80%AE" nocase
        $name = /name\*?=/ nocase
    condition:
        $name and any of ($rtlo*)
}
