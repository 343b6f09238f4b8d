# SCRIPT 2023011 profile: the 2017071 structure (2017071.structure) with the changes below.
#
# PROVISIONAL. No public 2023011 schema exists; each change cites its evidence and
# confidence from the team's research notes (shared/docs/script-2023011-changes.md, whose
# row numbers are given). A user holding NCPDP's licensed schema can correct this file and
# load it at run time (`rxflow --profile-structure TABLE --profile-rules FILE`, or
# script::LoadProfile) without new code.
#
# Directives:
#   version V                      the profile's name
#   attribute NAME VALUE           a Message version attribute written on output
#   detect VALUE                   a TransportVersion value that selects this profile on input
#   wrap PARENT/ELEMENT W/NAME     ELEMENT under PARENT is written as W/NAME (a new wrapper W,
#                                  the element renamed NAME inside it); read back the same way
#   rename PARENT/ELEMENT NAME     ELEMENT under PARENT is called NAME (PARENT * = any)
#   remove PARENT/ELEMENT          ELEMENT no longer exists under PARENT (PARENT * = any)
#   code LIST OLD NEW              code OLD of code list LIST becomes NEW

version 2023011
# Row C: inferred from 2021071 and 2024011 samples (low-medium confidence).
attribute DatatypesVersion 2023011
attribute TransportVersion 2023011
attribute TransactionDomain SCRIPT
attribute TransactionVersion 2023011
attribute StructuresVersion 2023011
attribute ECLVersion 2023011
detect 2023011

# Row 1 (high: balloted DERF 1510): time-zone elements sunset, all times are UTC.
remove */TimeZone
# Row 2 (high: DERF 1511).
code OrderGroupReason IVTherapy InjectableTherapy
# Row 4 (high: DERF 1515): PriorAuthorization renamed PriorAuthorizationNumber (an1..35).
rename */PriorAuthorization PriorAuthorizationNumber
# Row 14 (medium: NCPDP-derived sample 2021071, MITRE builders 2022/2024).
wrap HumanPatient/Name Names/Name
# Row 15 (medium).
wrap NonVeterinarian/Name Names/Name
# Row 16 (medium for the element; the code list is low confidence, kept as M/F/U).
wrap HumanPatient/Gender GenderAndSex/AdministrativeGender
# Row 17 (medium).
wrap MedicationPrescribed/DrugCoded Product/DrugCoded
# Row 19 (medium).
wrap MedicationPrescribed/Substitutions Substitutions/Substitutions
#
# Not applied: row 18 (a new DrugCoded/NDC child, medium) — its type and position are not
# shown by the evidence; row 17 for MedicationDispensed (seen in one reader only); rows 3, 5,
# 7, 8 (changes whose element-level content is not public).
