"""Regenerate the binary files of the Acme Robotics sample corpus.

Writes, relative to this file:

* ``acme-handbook/employee-handbook.pdf``        (PDF, multi-page, text layer)
* ``acme-handbook/it-security-policy.pdf``       (PDF, multi-page, text layer)
* ``acme-handbook/annual-leave-policy.docx``     (DOCX, Heading 1/2 styles, one table)
* ``acme-handbook/expenses-and-travel-policy.docx`` (DOCX, Heading 1/2 styles)
* ``bad/empty.txt``        (0 bytes)
* ``bad/not-really.pdf``   (plain text bytes with a .pdf name)
* ``bad/broken.pdf``       (first 300 bytes of employee-handbook.pdf)

The text formats (``.md``, ``.html``, ``.txt``, ``.csv``) in ``acme-handbook/``
are hand-written files and are not touched by this script.

Usage::

    .venv/bin/python sample_data/make_corpus.py

The company, people, phone numbers (+44 1632 960 xxx is an Ofcom drama range)
and e-mail addresses (``acme-robotics.example``) are fictional.
"""

from __future__ import annotations

import datetime as _dt
import io
import random
import zipfile
from pathlib import Path

import docx
import pymupdf
from docx.shared import Pt

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "acme-handbook"
BAD = HERE / "bad"

FIXED_DATE = _dt.datetime(2025, 1, 1, 9, 0, 0)
PDF_DATE = "D:20250101090000Z"


# --------------------------------------------------------------------------
# Tiny block model shared by the PDF and DOCX writers
# --------------------------------------------------------------------------


def H1(text):
    return ("h1", text)


def H2(text):
    return ("h2", text)


def P(text):
    return ("p", text)


def KV(*lines):
    """'Key: value' lines, one per line."""
    return ("kv", list(lines))


def UL(*items):
    return ("ul", list(items))


def TABLE(*rows):
    """First row is the header row."""
    return ("table", [list(r) for r in rows])


# --------------------------------------------------------------------------
# Content: Employee handbook (PDF)
# --------------------------------------------------------------------------

HANDBOOK = [
    H1("Acme Robotics Ltd Employee Handbook"),
    P(
        "This handbook explains how we work at Acme Robotics Ltd, what the company expects of its "
        "employees and what employees can expect from the company. It applies to all permanent and "
        "fixed-term employees in every Acme Robotics office. Where a separate company policy covers a "
        "topic in more detail, this handbook tells you which policy to read."
    ),
    H2("Document control"),
    KV(
        "Document owner: People Operations team",
        "Handbook version: 4.2",
        "Effective date: 1 January 2025",
        "Next scheduled review: January 2026",
        "Approved by: Margaret Okafor, Chief Executive Officer",
    ),
    H2("1. About Acme Robotics"),
    P(
        "Acme Robotics Ltd was founded in 2011 in Cambridge, United Kingdom, by Margaret Okafor and "
        "Rhys Llewellyn."
    ),
    P(
        "Acme Robotics designs, builds and services autonomous mobile robots that move pallets and "
        "totes inside warehouses and factories."
    ),
    P(
        "The company's flagship product is the Acme Trolleybot T7, an autonomous tote-handling robot "
        "that can carry loads of up to 600 kilograms."
    ),
    P("Acme Robotics employs approximately 640 people across 18 offices in 9 countries."),
    P(
        "The company's head office is in Cambridge, and the addresses and reception telephone numbers "
        "of every office are listed in the office directory."
    ),
    P(
        "Our mission is to take the heavy lifting out of logistics so that people can do safer and "
        "more interesting work."
    ),
    H2("2. Working hours"),
    P("The standard working week at Acme Robotics is 37.5 hours, worked Monday to Friday."),
    P(
        "Core hours are 10:00 to 16:00 local time, and all full-time employees are expected to be "
        "available during core hours unless they are on approved leave."
    ),
    P(
        "Outside core hours, employees may start work from 07:00 and finish as late as 20:00 by "
        "agreement with their line manager."
    ),
    P("Full-time employees are entitled to an unpaid lunch break of up to 60 minutes each day."),
    P(
        "Overtime for hourly-paid employees is paid at 1.5 times the normal hourly rate and must be "
        "approved in advance by the employee's line manager."
    ),
    P("Overtime worked on a public holiday is paid at 2 times the normal hourly rate."),
    P(
        "Salaried employees are not paid for overtime, but they may agree time off in lieu with their "
        "line manager, to be taken within 3 months."
    ),
    H2("3. Probation"),
    P("All new employees serve a probation period of 6 months from their start date."),
    P("A formal probation review meeting takes place at the end of the third month of employment."),
    P(
        "During probation, either the employee or the company may end employment by giving 1 week of "
        "written notice."
    ),
    P(
        "The line manager may extend a probation period once, by up to 3 months, if more time is "
        "needed to assess performance."
    ),
    P(
        "The line manager confirms the successful completion of probation in writing, and the "
        "confirmation letter is stored in the employee's personnel file."
    ),
    H2("4. Pay and payroll"),
    P("Salaries are paid monthly by bank transfer on the 25th day of each month."),
    P(
        "If the 25th day of the month falls on a weekend or a public holiday, salaries are paid on "
        "the previous working day."
    ),
    P("Payslips are published in PeopleHub three working days before payday."),
    P(
        "Changes to bank details must be entered in PeopleHub by the 10th day of the month to take "
        "effect for that month's salary."
    ),
    P(
        "Payroll queries should be sent to payroll@acme-robotics.example, which is monitored by "
        "Daniel Byrne, Payroll Manager."
    ),
    P(
        "An overpayment of salary must be repaid, and Payroll will agree a repayment plan of no more "
        "than 6 monthly instalments with the employee."
    ),
    H2("5. Performance and pay reviews"),
    P("Acme Robotics runs performance reviews twice a year, in April and in October."),
    P(
        "Objectives are recorded in Compass, the company's performance management tool, and are "
        "agreed between the employee and the line manager within 4 weeks of each review."
    ),
    P(
        "Performance is rated on a five-point scale, where 1 means Not yet meeting expectations and "
        "5 means Exceptional."
    ),
    P("Annual salary increases take effect on 1 July each year."),
    P("The annual company bonus, when awarded, is paid with the March salary."),
    P(
        "Employees who joined after 1 October are not eligible for the bonus paid in the following "
        "March."
    ),
    H2("6. Learning and development"),
    P(
        "Each employee has an individual learning budget of £1,200 per calendar year for courses, "
        "conferences and certifications."
    ),
    P(
        "Employees may take up to 5 paid study days per calendar year to attend approved training or "
        "to sit exams."
    ),
    P(
        "Requests to use the learning budget are submitted through Compass and approved by the line "
        "manager."
    ),
    P(
        "An employee who leaves within 12 months of completing a course that cost more than £3,000 "
        "must repay a proportion of the course fee."
    ),
    P(
        "Questions about training should be sent to the Learning and Development team at "
        "learning@acme-robotics.example."
    ),
    H2("7. Health and safety"),
    P(
        "Every employee has a duty to take reasonable care of their own health and safety and that of "
        "colleagues and visitors."
    ),
    P(
        "The Health and Safety Manager is Grace Mwangi, who can be contacted at "
        "safety@acme-robotics.example."
    ),
    P(
        "All accidents, injuries and near misses must be reported in SafeTrack, the company's "
        "incident reporting system, within 24 hours."
    ),
    P(
        "Nobody may enter the robot test arena without first completing the Arena Safety induction, "
        "which takes 90 minutes."
    ),
    P(
        "Safety boots and a high-visibility vest must be worn at all times inside the robot test "
        "arena."
    ),
    P(
        "When people are present in the robot test arena, robots must be limited to a maximum speed "
        "of 1.0 metre per second."
    ),
    P(
        "In the event of a fire alarm at Cambridge HQ, employees must leave by the nearest exit and "
        "gather at the fire assembly point at the north end of Car Park C."
    ),
    P("Each office has at least one trained first aider for every 50 employees."),
    H2("8. Dress code"),
    P("Acme Robotics has a smart-casual dress code for office-based employees."),
    P(
        "Employees working in the workshops and labs must wear the personal protective equipment "
        "specified in the risk assessment for that area."
    ),
    P(
        "Employees visiting customer sites must follow the customer's site rules, including any "
        "requirements for safety footwear."
    ),
    H2("9. Grievances and disciplinary matters"),
    P(
        "An employee who has a work-related concern that cannot be resolved informally should raise "
        "a formal grievance in writing with their HR Business Partner."
    ),
    P(
        "A grievance meeting will normally be held within 10 working days of the written grievance "
        "being received."
    ),
    P(
        "An employee may appeal against a grievance or disciplinary outcome by writing to the HR "
        "Director within 5 working days of receiving the outcome letter."
    ),
    P(
        "Employees have the right to be accompanied at any grievance or disciplinary meeting by a "
        "colleague or a trade union representative."
    ),
    P(
        "A first written warning remains on the employee's file for 6 months, and a final written "
        "warning remains on file for 12 months."
    ),
    H2("10. Leaving Acme Robotics"),
    P(
        "After probation, the notice period is 1 month for employees in grades 1 to 4 and 3 months "
        "for employees in grade 5 and above."
    ),
    P(
        "Resignations must be given in writing to the line manager and copied to "
        "hr@acme-robotics.example."
    ),
    P(
        "All company equipment, including laptops, building passes and corporate cards, must be "
        "returned on or before the employee's last working day."
    ),
    P("Every leaver is offered a confidential exit interview with the People Operations team."),
    P(
        "Any unused annual leave is paid with the final salary, and any leave taken in excess of the "
        "pro-rata entitlement is deducted from it."
    ),
    H2("11. Related policies"),
    P("This handbook should be read together with the following company policies:"),
    UL(
        "Annual Leave and Absence Policy",
        "Expenses and Travel Policy",
        "Remote and Hybrid Working Policy",
        "IT Security and Password Policy",
        "Code of Conduct",
        "New Starter Onboarding Guide",
        "Benefits Summary",
    ),
    P("The HR Director, Priya Raman, is responsible for keeping this handbook up to date."),
]


# --------------------------------------------------------------------------
# Content: IT security and password policy (PDF)
# --------------------------------------------------------------------------

IT_SECURITY = [
    H1("IT Security and Password Policy"),
    KV(
        "Policy reference: ITS-003",
        "Policy owner: Tomasz Wieczorek, Chief Information Security Officer",
        "Version: 2.1",
        "Effective date: 1 March 2025",
        "Applies to: all employees, contractors and temporary staff",
    ),
    H2("1. Purpose"),
    P(
        "This policy sets out the minimum security rules that everyone who uses Acme Robotics "
        "systems, devices or data must follow."
    ),
    P(
        "Acme Robotics robots operate in customer warehouses, so a security failure can affect "
        "physical safety as well as data."
    ),
    P("Breaches of this policy may lead to disciplinary action, up to and including dismissal."),
    H2("2. Passwords and passphrases"),
    P("Passwords for Acme Robotics accounts must be at least 14 characters long."),
    P(
        "Staff are encouraged to use a passphrase made of four or more unrelated words rather than a "
        "short complex password."
    ),
    P(
        "A new password must not be the same as any of the previous 10 passwords used on that "
        "account."
    ),
    P(
        "Standard user passwords do not expire on a fixed schedule and only need to be changed when "
        "there is a suspicion that they have been compromised."
    ),
    P("Passwords for privileged and administrator accounts must be changed every 90 days."),
    P("An account is locked for 15 minutes after 5 consecutive failed sign-in attempts."),
    P(
        "All work passwords must be stored in Vaultline, the company-approved password manager, and "
        "must never be written down or saved in a web browser."
    ),
    P(
        "Passwords must never be shared with anyone, including colleagues, managers or IT staff, and "
        "the IT Service Desk will never ask for your password."
    ),
    H2("3. Multi-factor authentication"),
    P(
        "Multi-factor authentication (MFA) is mandatory for every Acme Robotics account that "
        "supports it."
    ),
    P(
        "The approved MFA method for standard users is a push notification in the Acme "
        "Authenticator app on a company or personal smartphone."
    ),
    P(
        "Administrators and engineers with access to production robot fleets must use a FIDO2 "
        "hardware security key as their second factor."
    ),
    P(
        "A lost hardware security key must be reported to the IT Service Desk on the same working "
        "day so that it can be revoked."
    ),
    H2("4. Laptops and mobile devices"),
    P("All company laptops are protected by full-disk encryption, which must never be disabled."),
    P(
        "Screens must lock automatically after 5 minutes of inactivity, and users must lock their "
        "screen manually whenever they leave their device unattended."
    ),
    P(
        "Operating system and application security updates must be installed within 14 days of "
        "release."
    ),
    P(
        "Updates classified as critical by the Security team must be installed within 72 hours of "
        "release."
    ),
    P(
        "Personal devices may access company e-mail and chat only after being enrolled in the "
        "company's mobile device management service."
    ),
    P(
        "USB storage devices are blocked on company laptops by default, and exceptions must be "
        "requested through the IT Service Desk with a business justification."
    ),
    H2("5. Lost or stolen devices"),
    P(
        "If your laptop is lost or stolen, contact the IT Security Hotline on +44 1632 960 111 "
        "within one hour of noticing the loss."
    ),
    P(
        "The IT Security Hotline is staffed 24 hours a day, 7 days a week, including public "
        "holidays."
    ),
    P(
        "The Security team will remotely lock and, if necessary, wipe a lost device as soon as the "
        "loss is reported."
    ),
    P(
        "If a device has been stolen, the theft must also be reported to the police, and the crime "
        "reference number must be sent to security@acme-robotics.example within 48 hours."
    ),
    P(
        "Lost or stolen company mobile phones must be reported to the IT Security Hotline in the "
        "same way as laptops."
    ),
    H2("6. Phishing and suspicious e-mail"),
    P(
        "Suspicious e-mails must be reported using the Report Phish button in Outlook or by "
        "forwarding them to phishing@acme-robotics.example."
    ),
    P(
        "Never click links, open attachments or enter credentials from an e-mail you were not "
        "expecting until you have verified the sender by another channel."
    ),
    P("The Security team runs simulated phishing exercises every quarter."),
    P(
        "Employees who click a link in a simulated phishing e-mail are asked to complete a 10-minute "
        "refresher module."
    ),
    H2("7. Data classification"),
    P(
        "Acme Robotics classifies information into four levels: Public, Internal, Confidential and "
        "Restricted."
    ),
    KV(
        "Public: information approved for release outside the company, such as published product "
        "brochures.",
        "Internal: information for use by employees and contractors only, such as the staff "
        "intranet.",
        "Confidential: sensitive business information, such as customer contracts, pricing and "
        "employee records.",
        "Restricted: the most sensitive information, such as robot safety-controller source code "
        "and customer site maps.",
    ),
    P(
        "Restricted information must never be copied to removable media or sent to personal e-mail "
        "accounts."
    ),
    P(
        "Confidential and Restricted information may only be shared outside the company under a "
        "signed non-disclosure agreement."
    ),
    H2("8. Software and AI tools"),
    P(
        "Software may only be installed from the Acme Software Centre, the company's catalogue of "
        "approved applications."
    ),
    P(
        "Requests for software that is not in the Acme Software Centre are reviewed by the Security "
        "team within 3 working days."
    ),
    P(
        "The use of unapproved generative AI tools with Confidential or Restricted information is "
        "prohibited."
    ),
    H2("9. Security training"),
    P("All employees must complete the annual security awareness course by 31 March each year."),
    P(
        "New joiners must complete the security awareness course within 10 working days of their "
        "start date."
    ),
    H2("10. Reporting a security incident"),
    P(
        "Any actual or suspected security incident, such as malware, unauthorised access or data "
        "sent to the wrong person, must be reported immediately to security@acme-robotics.example."
    ),
    P(
        "The Security Operations Centre acknowledges incident reports within 30 minutes, 24 hours a "
        "day."
    ),
    P(
        "Employees must not try to investigate a suspected incident themselves, because doing so can "
        "destroy evidence."
    ),
    H2("11. IT support contacts"),
    KV(
        "IT Service Desk e-mail: servicedesk@acme-robotics.example",
        "IT Service Desk phone: extension 4357",
        "IT Service Desk hours: 07:00 to 19:00 UK time, Monday to Friday",
        "Security team e-mail: security@acme-robotics.example",
        "Phishing reports: phishing@acme-robotics.example",
    ),
    H2("12. Glossary"),
    KV(
        "MFA: multi-factor authentication, a sign-in method that requires a second proof of "
        "identity in addition to a password.",
        "Phishing: a fraudulent message that tries to trick the recipient into revealing "
        "credentials or installing malware.",
        "Passphrase: a password made of several words, which is longer and easier to remember than "
        "a traditional password.",
        "MDM: mobile device management, the service used to secure and manage phones and tablets "
        "that access company data.",
    ),
]


# --------------------------------------------------------------------------
# Content: Annual leave and absence policy (DOCX, with table)
# --------------------------------------------------------------------------

LEAVE = [
    H1("Annual Leave and Absence Policy"),
    P(
        "This policy explains how much leave employees of Acme Robotics Ltd receive, how to book it "
        "and what to do when you are unable to work because of illness or family reasons."
    ),
    H2("Policy at a glance"),
    KV(
        "Annual leave allowance: 25 working days per calendar year, plus public holidays.",
        "Leave year: 1 January to 31 December.",
        "Maximum carry-over: 5 days, to be used by 31 March of the following year.",
        "Booking system: PeopleHub.",
        "Policy owner: Amara Nwosu, People Operations Manager.",
        "Contact: hr@acme-robotics.example.",
    ),
    H2("1. Scope"),
    P("This policy applies to all employees of Acme Robotics Ltd on UK employment contracts."),
    P(
        "Employees in other countries follow the local addendum for their country, which may differ "
        "on public holidays and statutory entitlements."
    ),
    H2("2. Annual leave entitlement"),
    P(
        "Every full-time employee receives an annual leave allowance of 25 working days per calendar "
        "year, in addition to public holidays."
    ),
    P(
        "Part-time employees receive annual leave on a pro-rata basis according to the number of "
        "days they work each week."
    ),
    P(
        "Employees who join or leave during the leave year receive a pro-rata allowance for the part "
        "of the year in which they are employed."
    ),
    P(
        "Employees receive 1 additional day of annual leave for every 2 full years of continuous "
        "service, up to a maximum of 30 days per year."
    ),
    P(
        "Employees receive the public holidays of the country and region in which their contracted "
        "office is located."
    ),
    H2("3. Booking leave"),
    P(
        "Annual leave must be requested through PeopleHub and approved by the employee's line "
        "manager before any travel is booked."
    ),
    P(
        "Requests for more than 5 consecutive working days of leave must be submitted at least 4 "
        "weeks before the first day of leave."
    ),
    P(
        "Line managers must approve or decline a leave request within 5 working days of it being "
        "submitted."
    ),
    P(
        "No more than 10 consecutive working days of annual leave may be taken at one time without "
        "approval from the department head."
    ),
    H2("4. Carrying over and buying leave"),
    P("Employees may carry over up to 5 days of unused annual leave into the next leave year."),
    P("Carried-over leave must be used by 31 March of the following year, after which it is lost."),
    P(
        "Employees may buy up to 5 additional days of annual leave per year through salary "
        "sacrifice."
    ),
    P("The window for buying additional annual leave is open from 1 to 30 November each year."),
    H2("5. Sickness absence"),
    P(
        "An employee who is too ill to work must tell their line manager by telephone by 09:30 on "
        "the first day of absence."
    ),
    P("Employees may self-certify sickness absence of up to 7 calendar days."),
    P(
        "A fit note from a doctor is required for any sickness absence lasting 8 calendar days or "
        "more."
    ),
    P(
        "Company sick pay is full basic salary for up to 20 working days in any rolling 12-month "
        "period, after which statutory sick pay applies."
    ),
    P(
        "A return-to-work conversation with the line manager takes place after every period of "
        "sickness absence."
    ),
    H2("6. Family leave"),
    P("Maternity and adoption leave is paid at full basic salary for the first 26 weeks."),
    P(
        "Partners receive 6 weeks of paternity or partner leave at full basic salary, which may be "
        "taken at any time within the first 12 months after the birth or adoption."
    ),
    P(
        "Enhanced family leave pay is available to employees who have completed 6 months of "
        "continuous service by the expected week of childbirth or placement."
    ),
    P(
        "Employees returning from maternity or adoption leave may work 80% of their hours for 100% "
        "of their pay during their first 4 weeks back."
    ),
    H2("7. Other types of leave"),
    P("The table below summarises the other types of leave available at Acme Robotics."),
    TABLE(
        ("Leave type", "Entitlement", "Paid", "How to request"),
        (
            "Compassionate leave",
            "Up to 5 working days for the death of an immediate family member",
            "Yes",
            "Tell your line manager; recorded in PeopleHub",
        ),
        (
            "Dependant emergency leave",
            "Up to 2 working days per incident",
            "Yes",
            "Tell your line manager on the day",
        ),
        (
            "Volunteering leave",
            "2 working days per calendar year",
            "Yes",
            "PeopleHub, at least 2 weeks in advance",
        ),
        (
            "Jury service",
            "As long as the court requires",
            "Yes, less any court allowance",
            "Send the summons to hr@acme-robotics.example",
        ),
        ("Moving house", "1 working day per calendar year", "Yes", "PeopleHub"),
        (
            "Sabbatical",
            "Up to 3 months after 5 years of service",
            "No",
            "Written request to the department head 3 months in advance",
        ),
    ),
    P(
        "Compassionate leave of up to 5 working days is available following the death of an "
        "immediate family member."
    ),
    P(
        "Every employee may take 2 paid volunteering days per calendar year to support a registered "
        "charity or community group."
    ),
    P(
        "Employees with at least 5 years of service may request an unpaid sabbatical of up to 3 "
        "months."
    ),
    H2("8. Contacts"),
    P(
        "Questions about leave entitlement should be sent to the People Operations team at "
        "hr@acme-robotics.example."
    ),
    P("Amara Nwosu, People Operations Manager, owns this policy and reviews it every 12 months."),
]


# --------------------------------------------------------------------------
# Content: Expenses and travel policy (DOCX)
# --------------------------------------------------------------------------

EXPENSES = [
    H1("Expenses and Travel Policy"),
    P(
        "This policy explains what business expenses Acme Robotics Ltd will reimburse, how to claim "
        "them and how to book business travel."
    ),
    H2("Policy summary"),
    KV(
        "Policy owner: Helen Achterberg, Finance Controller",
        "Expenses system: Spendwise",
        "Expenses team e-mail: expenses@acme-robotics.example",
        "Travel desk e-mail: travel@acme-robotics.example",
        "Version: 3.0, effective 1 April 2025",
    ),
    H2("1. General principles"),
    P(
        "Employees are reimbursed for reasonable expenses that are incurred wholly and necessarily "
        "in the course of Acme Robotics business."
    ),
    P(
        "Employees should spend company money as carefully as if it were their own and choose the "
        "most economical option that meets the business need."
    ),
    P("Submitting a false or inflated expense claim is treated as gross misconduct."),
    H2("2. Submitting expense claims"),
    P(
        "All expense claims must be submitted through Spendwise, the company's expense management "
        "system."
    ),
    P("The expense claim deadline is 30 days after the expense was incurred."),
    P(
        "Expense claims submitted more than 90 days after the expense was incurred will not be "
        "reimbursed."
    ),
    P("An itemised receipt must be attached for every expense of £10 or more."),
    P(
        "Approved expense claims are reimbursed with the next monthly salary payment if they are "
        "approved by the 15th day of the month."
    ),
    P(
        "Expense claims approved after the 15th day of the month are reimbursed with the following "
        "month's salary."
    ),
    H2("3. Approval limits"),
    P("Expense claims of up to £500 are approved by the employee's line manager."),
    P("Expense claims above £500 and up to £2,500 must also be approved by the department head."),
    P(
        "Expense claims above £2,500 require the additional approval of the Finance Director, Kwame "
        "Asante."
    ),
    H2("4. Booking travel"),
    P(
        "All business flights, trains and hotels must be booked through the travel desk, which is "
        "run by Northwind Travel Management on behalf of Acme Robotics."
    ),
    P(
        "The travel desk can be contacted at travel@acme-robotics.example or on +44 1632 960 444 "
        "between 08:00 and 18:00 UK time, Monday to Friday."
    ),
    P(
        "International flights must be booked at least 14 days before departure, unless the trip is "
        "urgent and approved by the department head."
    ),
    P(
        "Every business trip outside the employee's home country must be approved by the line "
        "manager in Spendwise before it is booked."
    ),
    H2("5. Flights and rail"),
    P("Economy class must be used for all flights with a scheduled duration of less than 6 hours."),
    P("Premium economy may be booked for flights with a scheduled duration of 6 hours or more."),
    P(
        "Business class flights are only permitted with the written approval of the Chief Executive "
        "Officer."
    ),
    P(
        "Rail travel must be booked in standard class, unless a first-class ticket is cheaper than "
        "the standard fare."
    ),
    P(
        "Air miles and loyalty points earned on business travel may be kept by the employee, but "
        "they must never influence the choice of airline or hotel."
    ),
    H2("6. Hotels"),
    P(
        "The maximum hotel rate is £200 per night in London and £140 per night elsewhere in the "
        "United Kingdom, including breakfast."
    ),
    P(
        "Hotel rates for international destinations are set by the travel desk using the company's "
        "city rate list."
    ),
    P(
        "Employees who stay with friends or family instead of in a hotel may claim a flat allowance "
        "of £30 per night."
    ),
    H2("7. Meals and subsistence"),
    P(
        "The daily meal allowance on business travel is £45 within the United Kingdom and £60 "
        "outside the United Kingdom."
    ),
    P("Alcohol is not reimbursed, except as part of approved client entertainment."),
    P(
        "Client entertainment is limited to £75 per person, including drinks, and must be approved "
        "in advance by the line manager."
    ),
    H2("8. Mileage and ground transport"),
    P(
        "Business mileage in a private car is reimbursed at 45p per mile for the first 10,000 "
        "business miles in a tax year and 25p per mile after that."
    ),
    P(
        "Travel between home and the employee's base office is commuting, not business mileage, and "
        "cannot be claimed."
    ),
    P(
        "Taxis may be claimed only when no reasonable public transport is available or when "
        "travelling between 22:00 and 06:00."
    ),
    P("Airport parking is reimbursed up to a maximum of £15 per day."),
    H2("9. Corporate cards"),
    P("A corporate card is issued to employees who travel on business more than 4 times per year."),
    P(
        "Corporate card transactions must be reconciled in Spendwise by the 5th working day of the "
        "following month."
    ),
    P(
        "The corporate card must never be used for personal purchases, even if the employee intends "
        "to repay the amount."
    ),
    H2("10. Travel insurance and emergencies"),
    P(
        "All employees travelling on company business are covered by the company's business travel "
        "insurance policy."
    ),
    P("The 24-hour travel emergency assistance line is +44 1632 960 555."),
    P(
        "Employees must check the government's travel advice for their destination before every "
        "international business trip."
    ),
    H2("11. Definitions"),
    KV(
        "Business expense: a cost incurred wholly and necessarily for Acme Robotics business.",
        "Subsistence: the cost of meals and non-alcoholic drinks while travelling on business.",
        "Base office: the Acme Robotics office named in the employee's contract of employment.",
        "Client entertainment: hospitality provided to customers or prospective customers for a "
        "business purpose.",
    ),
    H2("12. Questions"),
    P(
        "Questions about expense claims should be sent to the Expenses team at "
        "expenses@acme-robotics.example."
    ),
]


# --------------------------------------------------------------------------
# PDF writer
# --------------------------------------------------------------------------

A4_W, A4_H = pymupdf.paper_size("a4")  # 595 x 842 points
MARGIN_X = 64
MARGIN_TOP = 64
MARGIN_BOTTOM = 72  # keep clear of the footer line
KEEP_WITH_NEXT = 90  # don't start a heading this close to the bottom

PDF_STYLE = {
    # kind: (fontname, fontsize, space_before, space_after, indent)
    "h1": ("hebo", 18, 0, 12, 0),
    "h2": ("hebo", 13, 8, 5, 0),
    "p": ("helv", 11, 0, 7, 0),
    "kv": ("helv", 11, 0, 3, 0),
    "ul": ("helv", 11, 0, 3, 14),
}


class _PdfWriter:
    def __init__(self):
        self.doc = pymupdf.open()
        self.page = None
        self.y = None
        self.bottom = A4_H - MARGIN_BOTTOM

    def new_page(self):
        self.page = self.doc.new_page(width=A4_W, height=A4_H)
        self.y = MARGIN_TOP

    def put(self, kind, text, extra_after=0):
        font, size, before, after, indent = PDF_STYLE[kind]
        if self.page is None:
            self.new_page()
        if kind in ("h1", "h2") and self.bottom - self.y < KEEP_WITH_NEXT:
            self.new_page()
        if self.y > MARGIN_TOP:
            self.y += before
        for attempt in range(2):
            rect = pymupdf.Rect(MARGIN_X + indent, self.y, A4_W - MARGIN_X, self.bottom)
            # insert_textbox writes nothing and returns a negative number if the text does not fit.
            rc = self.page.insert_textbox(rect, text, fontsize=size, fontname=font, align=0)
            if rc >= 0:
                self.y += rect.height - rc + after + extra_after
                return
            if attempt == 0:
                self.new_page()
        raise ValueError(f"block does not fit on an empty page: {text[:60]!r}")

    def add(self, block):
        kind, payload = block
        if kind in ("h1", "h2", "p"):
            self.put(kind, payload)
        elif kind == "kv":
            for i, line in enumerate(payload):
                self.put("kv", line, extra_after=6 if i == len(payload) - 1 else 0)
        elif kind == "ul":
            for i, item in enumerate(payload):
                self.put("ul", "- " + item, extra_after=6 if i == len(payload) - 1 else 0)
        else:
            raise ValueError(f"PDF writer does not support block kind {kind!r}")

    def finish(self, path, *, title, short_title, author, subject, keywords):
        n = self.doc.page_count
        for i, page in enumerate(self.doc, start=1):
            footer = f"Acme Robotics Ltd - {short_title} - Internal - Page {i} of {n}"
            page.insert_text(
                (MARGIN_X, A4_H - 36), footer, fontsize=8, fontname="helv", color=(0.4, 0.4, 0.4)
            )
        self.doc.set_metadata(
            {
                "title": title,
                "author": author,
                "subject": subject,
                "keywords": keywords,
                "creator": "sample_data/make_corpus.py",
                "producer": f"PyMuPDF {pymupdf.VersionBind}",
                "creationDate": PDF_DATE,
                "modDate": PDF_DATE,
            }
        )
        self.doc.save(path, garbage=4, deflate=True, no_new_id=True)
        self.doc.close()


def write_pdf(path, blocks, **meta):
    w = _PdfWriter()
    for b in blocks:
        w.add(b)
    w.finish(path, **meta)


# --------------------------------------------------------------------------
# DOCX writer
# --------------------------------------------------------------------------


def write_docx(path, blocks, *, title, author, subject, keywords, footer):
    d = docx.Document()
    cp = d.core_properties
    cp.title = title
    cp.author = author
    cp.subject = subject
    cp.keywords = keywords
    cp.last_modified_by = author
    cp.created = FIXED_DATE
    cp.modified = FIXED_DATE
    cp.revision = 1

    d.styles["Normal"].font.name = "Calibri"
    d.styles["Normal"].font.size = Pt(11)
    d.sections[0].footer.paragraphs[0].text = footer

    for kind, payload in blocks:
        if kind == "h1":
            d.add_heading(payload, level=1)
        elif kind == "h2":
            d.add_heading(payload, level=2)
        elif kind == "p":
            d.add_paragraph(payload)
        elif kind == "kv":
            for line in payload:
                key, value = line.split(":", 1)
                para = d.add_paragraph()
                para.add_run(key + ":").bold = True
                para.add_run(value)
        elif kind == "ul":
            for item in payload:
                d.add_paragraph(item, style="List Bullet")
        elif kind == "table":
            header, *body = payload
            table = d.add_table(rows=1 + len(body), cols=len(header))
            table.style = "Table Grid"
            for r, row in enumerate(payload):
                for c, text in enumerate(row):
                    cell = table.cell(r, c)
                    cell.text = text
                    if r == 0:
                        for run in cell.paragraphs[0].runs:
                            run.bold = True
        else:
            raise ValueError(f"DOCX writer does not support block kind {kind!r}")
    buf = io.BytesIO()
    d.save(buf)
    _normalise_zip(buf.getvalue(), path)


def _normalise_zip(data: bytes, path):
    """Rewrite a .docx with fixed zip timestamps so regeneration is byte-identical."""
    with (
        zipfile.ZipFile(io.BytesIO(data)) as src,
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=FIXED_DATE.timetuple()[:6])
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = info.external_attr
            dst.writestr(fixed, src.read(info.filename))


# --------------------------------------------------------------------------
# Robustness files
# --------------------------------------------------------------------------


def write_bad_files(real_pdf: Path):
    BAD.mkdir(parents=True, exist_ok=True)
    (BAD / "empty.txt").write_bytes(b"")
    rng = random.Random(20250101)
    words = ["lorem", "robot", "pallet", "xq7", "zzkt", "acme", "%%", "0x1f", "warehouse", "qwop"]
    junk = " ".join(rng.choice(words) for _ in range(300))
    (BAD / "not-really.pdf").write_bytes(
        ("This file is plain text with a .pdf extension; it is not a PDF.\n" + junk + "\n").encode()
    )
    (BAD / "broken.pdf").write_bytes(real_pdf.read_bytes()[:300])


# --------------------------------------------------------------------------


def main():
    CORPUS.mkdir(parents=True, exist_ok=True)
    handbook = CORPUS / "employee-handbook.pdf"
    write_pdf(
        handbook,
        HANDBOOK,
        title="Acme Robotics Ltd Employee Handbook",
        short_title="Employee Handbook v4.2",
        author="People Operations, Acme Robotics Ltd",
        subject="Employee handbook: working hours, probation, pay, reviews, safety, leaving",
        keywords="handbook, HR, payroll, probation, health and safety",
    )
    write_pdf(
        CORPUS / "it-security-policy.pdf",
        IT_SECURITY,
        title="IT Security and Password Policy",
        short_title="IT Security and Password Policy ITS-003",
        author="Tomasz Wieczorek, Chief Information Security Officer",
        subject="Passwords, MFA, devices, lost or stolen equipment, phishing, data classification",
        keywords="security, passwords, MFA, phishing",
    )
    write_docx(
        CORPUS / "annual-leave-policy.docx",
        LEAVE,
        title="Annual Leave and Absence Policy",
        author="Amara Nwosu, People Operations Manager",
        subject="Annual leave, sickness absence, family leave and other leave",
        keywords="leave, holiday, sickness, parental leave",
        footer="Acme Robotics Ltd - Annual Leave and Absence Policy - Internal",
    )
    write_docx(
        CORPUS / "expenses-and-travel-policy.docx",
        EXPENSES,
        title="Expenses and Travel Policy",
        author="Helen Achterberg, Finance Controller",
        subject="Expense claims, approval limits, travel booking, hotels, meals, mileage",
        keywords="expenses, travel, per diem, mileage",
        footer="Acme Robotics Ltd - Expenses and Travel Policy v3.0 - Internal",
    )
    write_bad_files(handbook)
    for p in sorted(list(CORPUS.iterdir()) + list(BAD.iterdir())):
        print(f"{p.stat().st_size:>8}  {p.relative_to(HERE)}")


if __name__ == "__main__":
    main()
